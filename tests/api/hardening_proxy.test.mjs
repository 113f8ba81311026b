// egov behind a reverse proxy: a real nginx on loopback in front of a node
// that trusts it (server.trusted_proxies), clients reaching nginx from
// different loopback addresses (127.0.0.2, .3, ...). The client address
// egov uses (access log, login throttle, sessions, audit records) is the
// right-most untrusted hop of X-Forwarded-For, whatever a client forges to
// the left of it; one client's bad logins block neither the other clients
// behind the same proxy nor an account's owner (ASVS 2.2.1); forged
// forwarding headers sent straight to egov from an untrusted address are
// ignored; and RFC 7239 Forwarded is read instead when configured.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backends, freePort } from '../lib/egov.mjs';
import { adminConfig, dbExec, start, stopClean } from './lib/http.mjs';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
const RESIDENT = { email: 'resident@demo.egov.mo', password: 'demo-resident-2026' }; // egov init --demo

// Starts nginx on 127.0.0.1:port proxying to upstream, with its own prefix
// directory; resolves once it accepts connections.
async function startNginx(upstream, extra = '') {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'egov-nginx-'));
  const port = await freePort();
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, d));
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://${upstream};
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      ${extra}
    }
  }
}
`);
  const child = spawn(NGINX, ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const deadline = Date.now() + 10000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${out}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`nginx not ready: ${out}`); }
    await new Promise((r) => setTimeout(r, 30));
  }
  return {
    port,
    async stop() {
      if (child.exitCode === null) child.kill('SIGQUIT');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// One request on a fresh connection from a chosen local address:
// { status, headers, json, text }.
function call(port, p, { from, method = 'GET', json, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    let body;
    if (json !== undefined) {
      body = JSON.stringify(json);
      h['Content-Type'] = 'application/json';
      h['Content-Length'] = Buffer.byteLength(body);
    }
    const r = http.request({ host: '127.0.0.1', port, path: p, method, headers: h, localAddress: from, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed;
        try { parsed = JSON.parse(text); } catch { parsed = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json: parsed });
      });
    });
    r.on('error', reject);
    if (body) r.write(body);
    r.end();
  });
}

const login = (port, from, who, headers = {}) => call(port, '/api/v1/identity/login', { method: 'POST', from, json: who, headers });
const cookieOf = (r) => (r.headers['set-cookie'] ?? [])[0]?.split(';')[0];

// The access log line of the request with this X-Request-Id (the log is
// flushed every 200 ms).
async function accessLine(node, id) {
  const file = path.join(node.dataDir, 'access.log');
  for (let i = 0; i < 50; i++) {
    if (existsSync(file)) {
      const line = readFileSync(file, 'utf8').split('\n').find((l) => l.includes(`"id":"${id}"`));
      if (line) return JSON.parse(line);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no access log line for ${id}`);
}

for (const backend of backends()) {
  describe(`behind a reverse proxy (${backend})`, { skip: !NGINX && 'nginx is not installed' }, () => {
    let node;
    let nginx;
    before(async () => {
      node = await start(backend, 'hardening_proxy', { config: adminConfig('trusted_proxies = 127.0.0.1\n') });
      nginx = await startNginx(`127.0.0.1:${node.port}`);
    });
    after(async () => {
      await nginx?.stop();
      await stopClean(node);
    });

    test('the client address is the right-most untrusted hop, in sessions, the access log and audit records', async () => {
      const r = await login(nginx.port, '127.0.0.3', RESIDENT, { 'X-Forwarded-For': '10.66.0.1', 'X-Request-Id': 'proxy-login-1' });
      assert.equal(r.status, 200, r.text);
      const s = await call(nginx.port, '/api/v1/identity/sessions', { from: '127.0.0.3', headers: { Cookie: cookieOf(r) } });
      assert.equal(s.status, 200, s.text);
      assert.deepEqual(s.json.items.map((x) => x.ip), ['127.0.0.3'], 'the forged 10.66.0.1 was believed, or the proxy was');
      const line = await accessLine(node, 'proxy-login-1');
      assert.equal(line.ip, '127.0.0.3');
      assert.equal(line.via, '127.0.0.1');
      const details = dbExec(node, `SELECT details FROM audit_log WHERE action = 'identity.login' AND details LIKE '%proxy-login-1%'`);
      assert.equal(JSON.parse(details).ip, '127.0.0.3');
    });

    test('fifty bad logins from one client behind the proxy do not block the others', async () => {
      // Unknown e-mails, so that only the address counter grows.
      for (let i = 0; i < 50; i++) {
        const r = await login(nginx.port, '127.0.0.2', { email: `nobody${i}@example.mo`, password: 'wrong-password-x' });
        assert.equal(r.status, 401, `failure ${i}: ${r.status} ${r.text}`);
      }
      const blocked = await login(nginx.port, '127.0.0.2', RESIDENT);
      assert.equal(blocked.status, 429, blocked.text);
      assert.equal(blocked.json.code, 'identity.throttled');
      const other = await login(nginx.port, '127.0.0.3', RESIDENT);
      assert.equal(other.status, 200, `another client behind the same proxy: ${other.text}`);
    });

    test("a stranger's guesses at an account do not lock its owner out", async () => {
      for (let i = 0; i < 5; i++) {
        const r = await login(nginx.port, '127.0.0.4', { email: RESIDENT.email, password: `guess-${i}-wrong` });
        assert.equal(r.status, 401, r.text);
      }
      const stranger = await login(nginx.port, '127.0.0.4', RESIDENT);
      assert.equal(stranger.status, 429, 'the guessing client is held up');
      const owner = await login(nginx.port, '127.0.0.5', RESIDENT);
      assert.equal(owner.status, 200, `the owner, from elsewhere: ${owner.text}`);
    });

    test('forwarding headers sent straight to egov from an untrusted address are ignored', async () => {
      for (const h of [{ 'X-Forwarded-For': '203.0.113.5' }, { 'X-Forwarded-For': '127.0.0.1, 203.0.113.5' },
        { Forwarded: 'for=203.0.113.5' }, { 'X-Real-IP': '203.0.113.5' }]) {
        const id = `forged-${Math.random().toString(36).slice(2)}`;
        const r = await call(node.port, '/api/v1/version', { from: '127.0.0.6', headers: { ...h, 'X-Request-Id': id } });
        assert.equal(r.status, 200);
        const line = await accessLine(node, id);
        assert.equal(line.ip, '127.0.0.6', JSON.stringify(h));
        assert.equal(line.via, undefined);
      }
      // From the trusted proxy's own address, the header it does not set
      // (Forwarded, with proxy_header = x-forwarded-for) is ignored too.
      const id = 'forged-forwarded';
      await call(node.port, '/api/v1/version', { from: '127.0.0.1', headers: { Forwarded: 'for=203.0.113.5', 'X-Request-Id': id } });
      assert.equal((await accessLine(node, id)).ip, '127.0.0.1');
    });
  });

  describe(`Forwarded (RFC 7239) and CIDR ranges (${backend})`, () => {
    let node;
    before(async () => {
      node = await start(backend, 'hardening_proxy7239', {
        config: adminConfig('trusted_proxies = 127.0.0.0/30, 2001:db8:ffff::/48\nproxy_header = forwarded\n'),
      });
    });
    after(async () => { await stopClean(node); });

    test('the right-most untrusted for= wins; X-Forwarded-For is ignored', async () => {
      const cases = [
        ['for=198.51.100.7', '198.51.100.7'],
        ['for=198.51.100.7, for="[2001:db8::1]:4711"', '2001:db8::1'],
        ['for=198.51.100.7;proto=https, for="[2001:db8:ffff::9]"', '198.51.100.7'],
        ['for=198.51.100.7, for=127.0.0.2', '198.51.100.7'],
        ['For="198.51.100.8:8080";by=127.0.0.1', '198.51.100.8'],
        ['for=unknown', '127.0.0.1'],
        ['for=_hidden, for=198.51.100.9', '198.51.100.9'],
        ['for=198.51.100.7, for=_hidden', '127.0.0.1'],
      ];
      for (const [fwd, want] of cases) {
        const id = `fwd-${Math.random().toString(36).slice(2)}`;
        const r = await call(node.port, '/api/v1/version', {
          from: '127.0.0.1', headers: { Forwarded: fwd, 'X-Forwarded-For': '203.0.113.1', 'X-Request-Id': id },
        });
        assert.equal(r.status, 200);
        assert.equal((await accessLine(node, id)).ip, want, fwd);
      }
      // 127.0.0.4 is outside 127.0.0.0/30: its header is not read.
      const id = 'fwd-outside';
      await call(node.port, '/api/v1/version', { from: '127.0.0.4', headers: { Forwarded: 'for=198.51.100.7', 'X-Request-Id': id } });
      assert.equal((await accessLine(node, id)).ip, '127.0.0.4');
    });
  });
}

// nginx's own check, so that a missing binary is a clear skip rather than a
// confusing failure.
if (NGINX) {
  const v = spawnSync(NGINX, ['-v'], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stderr);
}
