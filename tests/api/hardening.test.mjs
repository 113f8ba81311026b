// Hardening of what a node exposes, tried from outside: /metrics closed off
// loopback unless a bearer token is configured (system.metrics_allow,
// system.metrics_token), and the OCSP responder answering `unauthorized`
// (RFC 6960 2.3), checked with `openssl ocsp`, for certificates of an issuer
// it cannot speak for.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backends, bin, freePort, root } from '../lib/egov.mjs';
import { adminConfig, assertProblem, auth, request, start, stopClean } from './lib/http.mjs';

const METRICS_TOKEN = 'metrics-scrape-token-0123456789abcdefghijkl';

// A non-loopback address of this machine, to scrape from "elsewhere".
function outsideAddress() {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (!a.internal && a.family === 'IPv4') return a.address;
    }
  }
  return null;
}

// GET on a fresh connection from a chosen local address: { status, headers, text, json }.
function getFrom(host, port, p, { from, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host, port, path: p, headers, localAddress: from, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const h = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: h, text, json });
      });
    });
    r.on('error', reject);
    r.end();
  });
}

// `egov serve` on base's data and database, listening on every interface
// (so that a scrape can come from a non-loopback address).
async function serveAll(base, conf) {
  const port = await freePort();
  const file = path.join(base.dataDir, `serve-${port}.conf`);
  writeFileSync(file, conf);
  const child = spawn(bin, ['serve', '--data', base.dataDir, '--database', base.database, '--config', file,
    '--listen', `0.0.0.0:${port}`], {
    env: { ...process.env, EGOV_WEB_DIR: path.join(root, 'web') }, cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const node = { port, url: `http://127.0.0.1:${port}`, database: base.database, dataDir: base.dataDir };
  const deadline = Date.now() + 10000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`egov serve exited early: ${out}`);
    try {
      if ((await fetch(`${node.url}/healthz`)).status === 200) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`egov serve not ready: ${out}`); }
    await new Promise((r) => setTimeout(r, 30));
  }
  node.stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(t);
    }
    assert.deepEqual(await exited, { code: 0, signal: null }, `egov did not exit cleanly:\n${out.slice(-3000)}`);
  };
  return node;
}

function openssl(args) {
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 30000, input: '' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

for (const backend of backends()) {
  describe(`/metrics access (${backend})`, () => {
    let base;
    const outside = outsideAddress();
    before(async () => {
      base = await start(backend, 'hardening', { config: adminConfig() });
      await base.stop({ keepData: true });
    });
    after(() => { rmSync(base.dataDir, { recursive: true, force: true }); });

    test('default: served to loopback scrapes, 403 to others and to scrapes through a proxy', async () => {
      const node = await serveAll(base, adminConfig());
      try {
        for (const from of ['127.0.0.1', '127.0.0.2']) {
          const r = await getFrom('127.0.0.1', node.port, '/metrics', { from });
          assert.equal(r.status, 200, `from ${from}`);
          assert.match(r.text, /^# HELP /m);
        }
        // A forwarding header means a proxy passed the scrape on: not local.
        for (const h of [{ 'X-Forwarded-For': '203.0.113.9' }, { Forwarded: 'for=203.0.113.9' }, { 'X-Real-IP': '203.0.113.9' }]) {
          const r = await getFrom('127.0.0.1', node.port, '/metrics', { from: '127.0.0.1', headers: h });
          assertProblem(r, { status: 403, code: 'forbidden' });
        }
        if (outside) {
          const r = await getFrom(outside, node.port, '/metrics', { from: outside });
          assertProblem(r, { status: 403, code: 'forbidden' });
          assert.doesNotMatch(r.text, /egov_/);
          // Without a configured token no token opens it, the operator's neither.
          const t = await getFrom(outside, node.port, '/metrics', { from: outside, headers: auth });
          assertProblem(t, { status: 403, code: 'forbidden' });
          // The other system endpoints stay public.
          assert.equal((await getFrom(outside, node.port, '/healthz', { from: outside })).status, 200);
          assert.equal((await getFrom(outside, node.port, '/api/v1/version', { from: outside })).status, 200);
        }
      } finally {
        await node.stop();
      }
    });

    test('a bearer token opens it from anywhere; metrics_allow narrows the addresses', async () => {
      const node = await serveAll(base, `${adminConfig()}[system]\nmetrics_token = ${METRICS_TOKEN}\nmetrics_allow = 127.0.0.1\n`);
      const bearer = (t) => ({ Authorization: `Bearer ${t}` });
      try {
        assert.equal((await getFrom('127.0.0.1', node.port, '/metrics', { from: '127.0.0.1' })).status, 200);
        const other = await getFrom('127.0.0.1', node.port, '/metrics', { from: '127.0.0.2' });
        assertProblem(other, { status: 401, code: 'unauthorized' });
        assert.match(other.headers.get('www-authenticate') ?? '', /^Bearer/);
        const ok = await getFrom('127.0.0.1', node.port, '/metrics', { from: '127.0.0.2', headers: bearer(METRICS_TOKEN) });
        assert.equal(ok.status, 200);
        assert.match(ok.text, /egov_http_requests_total/);
        for (const t of [`${METRICS_TOKEN}x`, METRICS_TOKEN.slice(0, -1), auth.Authorization.slice(7)]) {
          const bad = await getFrom('127.0.0.1', node.port, '/metrics', { from: '127.0.0.2', headers: bearer(t) });
          assertProblem(bad, { status: 401, code: 'unauthorized' });
        }
        if (outside) {
          const r = await getFrom(outside, node.port, '/metrics', { from: outside, headers: bearer(METRICS_TOKEN) });
          assert.equal(r.status, 200);
          const x = await getFrom('127.0.0.1', node.port, '/metrics', { from: '127.0.0.1', headers: { 'X-Forwarded-For': '198.51.100.1', ...bearer(METRICS_TOKEN) } });
          assert.equal(x.status, 200, 'the token counts through a proxy too');
        }
      } finally {
        await node.stop();
      }
    });

    test('bad values are refused at start, naming the key', () => {
      for (const [line, re] of [
        ['metrics_token = short', /system\.metrics_token: the value is too short/],
        ['metrics_allow = 10.0.0.1/8', /system\.metrics_allow: "10\.0\.0\.1\/8" has "10\.0\.0\.1\/8", whose host bits are set/],
        ['metrics_allow = localhost', /system\.metrics_allow: "localhost" has "localhost", which is not an IP address or CIDR range/],
      ]) {
        const file = path.join(base.dataDir, 'bad.conf');
        writeFileSync(file, `[system]\n${line}\n`);
        const r = spawnSync(bin, ['serve', '--data', base.dataDir, '--database', base.database, '--config', file],
          { encoding: 'utf8', timeout: 10000 });
        assert.notEqual(r.status, 0, line);
        assert.match(r.stderr, re);
      }
    });
  });

  describe(`OCSP for another issuer (${backend})`, () => {
    let node;
    let dir;
    const f = (n) => path.join(dir, n);
    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'egov-ocsp-'));
      node = await start(backend, 'hardening_ocsp', { config: adminConfig() });
      // Our issuing CA and a certificate it issued.
      const iss = Buffer.from(await (await fetch(`${node.url}/pki/issuing.crt`)).arrayBuffer());
      writeFileSync(f('issuing.der'), iss);
      assert.equal(openssl(['x509', '-inform', 'der', '-in', f('issuing.der'), '-out', f('issuing.pem')]).status, 0);
      assert.equal(openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', f('ours.key'), '-subj', '/CN=ours', '-out', f('ours.csr')]).status, 0);
      const r = await request(node, '/api/v1/certificates', {
        method: 'POST', headers: auth, json: { csr: readFileSync(f('ours.csr'), 'utf8'), profile: 'person_auth', owner: 'r-1' },
      });
      assert.equal(r.status, 201, r.text);
      writeFileSync(f('ours.pem'), r.json.certificate);
      // Another CA, and a certificate of its own.
      assert.equal(openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
        '-keyout', f('other-ca.key'), '-out', f('other-ca.pem'), '-subj', '/CN=Some Other CA']).status, 0);
      assert.equal(openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', f('other.key'), '-subj', '/CN=other', '-out', f('other.csr')]).status, 0);
      assert.equal(openssl(['x509', '-req', '-in', f('other.csr'), '-CA', f('other-ca.pem'), '-CAkey', f('other-ca.key'),
        '-set_serial', '42', '-days', '2', '-out', f('other.pem')]).status, 0);
    });
    after(async () => {
      await stopClean(node);
      rmSync(dir, { recursive: true, force: true });
    });

    test('a certificate of another issuer: unauthorized, not an "unknown" signed for it', () => {
      const o = openssl(['ocsp', '-issuer', f('other-ca.pem'), '-cert', f('other.pem'), '-url', `${node.url}/pki/ocsp`,
        '-resp_text', '-noverify']);
      assert.match(o.out, /Responder Error: unauthorized \(6\)/, o.out);
      assert.doesNotMatch(o.out, /Cert Status: unknown/);
      // Asked together with one of ours: the responder cannot answer the whole request.
      const mixed = openssl(['ocsp', '-issuer', f('issuing.pem'), '-cert', f('ours.pem'), '-issuer', f('other-ca.pem'),
        '-cert', f('other.pem'), '-url', `${node.url}/pki/ocsp`, '-resp_text', '-noverify']);
      assert.match(mixed.out, /Responder Error: unauthorized \(6\)/, mixed.out);
      // Ours alone is still answered, and signed.
      const ours = openssl(['ocsp', '-issuer', f('issuing.pem'), '-cert', f('ours.pem'), '-url', `${node.url}/pki/ocsp`,
        '-noverify']);
      assert.match(ours.out, /ours\.pem: good/, ours.out);
    });
  });
}
