// HTTPS as egov serves it itself, tried with `openssl s_client`: on the main
// listener (server.tls_cert) and on the peer listener (server.peer_listen)
// TLS 1.0, TLS 1.1 and CBC suites with SHA-1 are refused and TLS 1.2 and 1.3
// with AEAD suites accepted (server.tls_priorities, default secure); a priority
// string GnuTLS refuses stops the start with a message naming the key; and
// Strict-Transport-Security is sent over HTTPS, never over plain HTTP nor to
// peers.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backends, bin, freePort, root, run } from '../lib/egov.mjs';
import { adminConfig, request, start, stopClean } from './lib/http.mjs';

function openssl(args, opts = {}) {
  return spawnSync('openssl', args, { encoding: 'utf8', timeout: 20000, input: '', ...opts });
}

function mustOpenssl(args) {
  const r = openssl(args);
  assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stdout}${r.stderr}`);
}

// A test CA and two EC server certificates signed by it.
function makeCerts(dir) {
  const f = (n) => path.join(dir, n);
  mustOpenssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-keyout', f('ca.key'), '-out', f('ca.pem'), '-subj', '/CN=hardening test CA']);
  writeFileSync(f('ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  for (const name of ['main', 'peer']) {
    mustOpenssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`),
      '-out', f(`${name}.csr`), '-subj', `/CN=${name}`]);
    mustOpenssl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'),
      '-CAcreateserial', '-days', '2', '-extfile', f('ext'), '-out', f(`${name}.pem`)]);
  }
  return f;
}

// One HTTPS request on a fresh connection: { status, headers, text }.
function tlsGet(port, ca, p, { key, cert } = {}) {
  return new Promise((resolve, reject) => {
    const r = https.request({ host: '127.0.0.1', port, path: p, ca, key, cert, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const h = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        resolve({ status: res.statusCode, headers: h, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    r.on('error', reject);
    r.end();
  });
}

// `egov serve` over HTTPS on base's data and database with conf; resolves
// once /healthz answers over TLS.
async function serveTls(base, conf, ca) {
  const port = await freePort();
  const file = path.join(base.dataDir, `tls-${port}.conf`);
  writeFileSync(file, conf);
  const child = spawn(bin, ['serve', '--data', base.dataDir, '--database', base.database, '--config', file,
    '--listen', `127.0.0.1:${port}`], {
    env: { ...process.env, EGOV_WEB_DIR: path.join(root, 'web') }, cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 10000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`egov serve exited early: ${out}`);
    try {
      if ((await tlsGet(port, ca, '/healthz')).status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`egov serve not ready: ${out}`); }
    await new Promise((r) => setTimeout(r, 30));
  }
  return {
    port,
    logs: () => out,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10000);
        await exited;
        clearTimeout(t);
      }
      assert.deepEqual(await exited, { code: 0, signal: null }, `egov did not exit cleanly:\n${out.slice(-3000)}`);
    },
  };
}

// What `openssl s_client -brief` agreed on, or null when the handshake failed.
function handshake(port, args) {
  const r = openssl(['s_client', '-brief', '-connect', `127.0.0.1:${port}`, ...args]);
  const text = `${r.stdout}${r.stderr}`;
  const proto = /Protocol version: (\S+)/.exec(text)?.[1];
  const suite = /Ciphersuite: (\S+)/.exec(text)?.[1];
  return proto && suite ? { proto, suite } : null;
}

// OpenSSL 3 refuses TLS 1.0/1.1 and SHA-1 itself at its default security
// level; level 0 lets the client offer them, so the refusal is the server's.
const OLD = 'DEFAULT:@SECLEVEL=0';
const CBC_SHA1 = 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:@SECLEVEL=0';
const AEAD = /GCM|CHACHA20/;

for (const backend of backends()) {
  describe(`HTTPS listeners (${backend})`, () => {
    let base;
    let dir;
    let f;
    let node;
    let peerPort;
    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'egov-tls-'));
      f = makeCerts(dir);
      base = await start(backend, 'hardening_tls', { config: adminConfig() });
      await base.stop({ keepData: true });
      peerPort = await freePort();
      node = await serveTls(base, adminConfig(`tls_cert = ${f('main.pem')}\ntls_key = ${f('main.key')}\n`
        + `peer_listen = 127.0.0.1:${peerPort}\npeer_tls_cert = ${f('peer.pem')}\npeer_tls_key = ${f('peer.key')}\n`
        + `peer_tls_ca = ${f('ca.pem')}\n`), readFileSync(f('ca.pem')));
    });
    after(async () => {
      if (node) await node.stop();
      rmSync(base.dataDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    });

    for (const [which, port] of [['main', () => node.port], ['peer', () => peerPort]]) {
      test(`${which} listener: TLS 1.0, 1.1 and CBC-SHA1 refused; 1.2 and 1.3 with AEAD accepted`, () => {
        assert.equal(handshake(port(), ['-tls1', '-cipher', OLD]), null, 'TLS 1.0 was accepted');
        assert.equal(handshake(port(), ['-tls1_1', '-cipher', OLD]), null, 'TLS 1.1 was accepted');
        assert.equal(handshake(port(), ['-tls1_2', '-cipher', CBC_SHA1]), null, 'a CBC-SHA1 suite was accepted');
        const t12 = handshake(port(), ['-tls1_2']);
        assert.ok(t12, 'TLS 1.2 was refused');
        assert.equal(t12.proto, 'TLSv1.2');
        assert.match(t12.suite, /^ECDHE-/, `TLS 1.2 without forward secrecy: ${t12.suite}`);
        assert.match(t12.suite, AEAD, `TLS 1.2 suite: ${t12.suite}`);
        const t13 = handshake(port(), ['-tls1_3']);
        assert.ok(t13, 'TLS 1.3 was refused');
        assert.equal(t13.proto, 'TLSv1.3');
        assert.match(t13.suite, AEAD);
        const chacha = handshake(port(), ['-tls1_2', '-cipher', 'ECDHE-ECDSA-CHACHA20-POLY1305']);
        assert.ok(chacha, 'ChaCha20-Poly1305 was refused');
      });
    }

    test('Strict-Transport-Security over HTTPS, not to peers, not over plain HTTP', async () => {
      const ca = readFileSync(f('ca.pem'));
      for (const p of ['/healthz', '/no/such/page', '/']) {
        const r = await tlsGet(node.port, ca, p);
        assert.equal(r.headers.get('strict-transport-security'), 'max-age=31536000', `${p}: ${r.status}`);
      }
      const peer = await tlsGet(peerPort, ca, '/healthz');
      assert.equal(peer.status, 403);
      assert.equal(peer.headers.get('strict-transport-security'), null, 'HSTS sent to a peer');
      const plain = await start(backend, 'hardening_tls_plain', { config: adminConfig() });
      try {
        for (const p of ['/healthz', '/']) {
          const r = await request(plain, p);
          assert.equal(r.headers.get('strict-transport-security'), null, `HSTS over plain HTTP on ${p}`);
        }
      } finally {
        await stopClean(plain);
      }
    });

    test('server.tls_priorities: configurable, and checked at start with a message naming the key', async () => {
      const conf = path.join(dir, 'bad.conf');
      writeFileSync(conf, adminConfig(`tls_cert = ${f('main.pem')}\ntls_key = ${f('main.key')}\n`
        + 'tls_priorities = "NORMAL:+NO-SUCH-THING"\n'));
      const r = run(['serve', '--data', base.dataDir, '--database', base.database, '--config', conf,
        '--listen', `127.0.0.1:${await freePort()}`], { env: { ...process.env, EGOV_WEB_DIR: path.join(root, 'web') } });
      assert.notEqual(r.status, 0, 'egov started with a priority string GnuTLS refuses');
      assert.match(r.stderr, /server\.tls_priorities: "NORMAL:\+NO-SUCH-THING" is refused by GnuTLS at "\+?NO-SUCH-THING"/);
      // An operator who must serve TLS 1.3 only can say so.
      const only13 = await serveTls(base, adminConfig(`tls_cert = ${f('main.pem')}\ntls_key = ${f('main.key')}\n`
        + 'tls_priorities = "NORMAL:-VERS-ALL:+VERS-TLS1.3"\n'), readFileSync(f('ca.pem')));
      try {
        assert.equal(handshake(only13.port, ['-tls1_2']), null, 'TLS 1.2 accepted under a 1.3-only string');
        assert.equal(handshake(only13.port, ['-tls1_3'])?.proto, 'TLSv1.3');
      } finally {
        await only13.stop();
      }
    });
  });
}
