// Certificate login (assurance level 3) against real nodes: one node serving
// HTTPS with mutual TLS (server certificate made with openssl), then the same
// data directory served over plain HTTP behind a "proxy" (127.0.0.1 listed in
// server.trusted_proxies, X-Client-Cert as nginx's $ssl_client_escaped_cert),
// and once more with the proxy list naming another address. Client
// certificates are issued through the PKI API from CSRs made by `openssl req`
// and presented by node's https module.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backends, bin, freePort, root, run } from '../lib/egov.mjs';
import { adminConfig, ADMIN_TOKEN, assertProblem, dbExec, request, start } from './lib/http.mjs';

function openssl(args) {
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stdout}${r.stderr}`);
}

// `egov serve` on an existing data directory and database with a config of
// our own; resolves once /healthz answers (over HTTPS when ca is given).
async function serve(base, confText, ca = null) {
  const port = await freePort();
  const conf = path.join(base.dataDir, `serve-${port}.conf`);
  writeFileSync(conf, confText);
  const child = spawn(bin, ['serve', '--data', base.dataDir, '--database', base.database, '--config', conf,
    '--listen', `127.0.0.1:${port}`], {
    env: { ...process.env, EGOV_WEB_DIR: path.join(root, 'web') }, cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const node = {
    port, ca, database: base.database, url: `${ca ? 'https' : 'http'}://127.0.0.1:${port}`, logs: () => out,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10000);
        await exited;
        clearTimeout(t);
      }
      const e = await exited;
      assert.deepEqual(e, { code: 0, signal: null }, `egov did not exit cleanly:\n${out.slice(-3000)}`);
    },
  };
  const deadline = Date.now() + 10000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`egov serve exited early: ${out}`);
    try {
      const r = ca ? await tlsRequest(node, '/healthz') : await request(node, '/healthz');
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`egov serve not ready: ${out}`); }
    await new Promise((r) => setTimeout(r, 30));
  }
  return node;
}

// One HTTPS request on a fresh connection (no session reuse across client
// certificates), answered as { status, headers (a Headers), text, json }.
function tlsRequest(node, p, { method = 'GET', headers = {}, json, key, cert } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    let body;
    if (json !== undefined) {
      body = JSON.stringify(json);
      h['Content-Type'] = 'application/json';
    }
    const r = https.request({
      host: '127.0.0.1', port: node.port, path: p, method, headers: h, ca: node.ca, key, cert, agent: false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const hs = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2) hs.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        let parsed;
        try { parsed = JSON.parse(text); } catch { parsed = undefined; }
        resolve({ status: res.statusCode, headers: hs, text, json: parsed });
      });
    });
    r.on('error', reject);
    if (body) r.write(body);
    r.end();
  });
}

const auth = { Authorization: `Bearer ${ADMIN_TOKEN}` };
const sid = (res) => (res.headers.get('set-cookie') ?? '').match(/egov_sid=([^;]+)/)?.[1];

function audited(node, action) {
  return Number(dbExec(node, `SELECT count(*) FROM audit_log WHERE action = '${action}'`));
}

for (const backend of backends()) {
  describe(`certificate login (${backend})`, () => {
    let base; // the data directory and database, made by a first plain start
    let node; // the HTTPS node
    let dir;
    let accountId;
    let authSerial;
    const f = (name) => path.join(dir, name);
    const pem = (name) => readFileSync(f(name), 'utf8');
    const client = (name) => ({ key: pem(`${name}.key`), cert: pem(`${name}.pem`) });

    async function issue(name, profile, owner) {
      openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', f(`${name}.key`), '-subj', `/CN=${name}`, '-out', f(`${name}.csr`)]);
      const r = await tlsRequest(node, '/api/v1/certificates', {
        method: 'POST', headers: auth, json: { csr: pem(`${name}.csr`), profile, owner },
      });
      assert.equal(r.status, 201, r.text);
      writeFileSync(f(`${name}.pem`), r.json.certificate);
      return r.json.serial;
    }

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'egov-certlogin-'));
      base = await start(backend, 'certlogin', { config: adminConfig() });
      await base.stop({ keepData: true });
      const add = run(['user', 'add', '--email', 'cert.user@example.org', '--name', 'Cert User', '--kind', 'resident',
        '--data', base.dataDir, '--database', base.database], { cwd: root });
      assert.equal(add.status, 0, add.stderr);
      accountId = add.stdout.trim();
      assert.match(accountId, /^[0-9a-f-]{36}$/);

      openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
        '-keyout', f('server.key'), '-out', f('server.pem'), '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1']);
      node = await serve(base, adminConfig(`tls_cert = ${f('server.pem')}\ntls_key = ${f('server.key')}\n`),
        pem('server.pem'));

      authSerial = await issue('auth', 'person_auth', accountId);
      await issue('sign', 'person_sign', accountId);
      await issue('stranger', 'person_auth', 'no-such-account');
      // A foreign CA of our own making, and a client certificate from it.
      openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
        '-keyout', f('foreign-ca.key'), '-out', f('foreign-ca.pem'), '-subj', '/CN=Foreign CA',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
      openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', f('foreign.key'), '-out', f('foreign.csr'), '-subj', `/CN=Foreign/UID=${accountId}`]);
      writeFileSync(f('foreign.ext'), 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
      openssl(['x509', '-req', '-in', f('foreign.csr'), '-CA', f('foreign-ca.pem'), '-CAkey', f('foreign-ca.key'),
        '-CAcreateserial', '-days', '2', '-extfile', f('foreign.ext'), '-out', f('foreign.pem')]);
    });
    after(async () => {
      if (node) await node.stop();
      rmSync(dir, { recursive: true, force: true });
      if (base) rmSync(base.dataDir, { recursive: true, force: true });
    });

    test('the node speaks HTTPS only: plain HTTP on its port gets no answer', async () => {
      await assert.rejects(fetch(`http://127.0.0.1:${node.port}/healthz`));
      const r = await tlsRequest(node, '/healthz');
      assert.equal(r.status, 200);
    });

    test('a person_auth certificate logs in at acr 3 with a Secure session cookie', async () => {
      const before_ = audited(node, 'identity.login.certificate');
      const r = await tlsRequest(node, '/api/v1/identity/login/certificate', { method: 'POST', ...client('auth') });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.account.id, accountId);
      assert.equal(r.json.session.acr, 3);
      const cookie = r.headers.get('set-cookie');
      assert.match(cookie, /egov_sid=/);
      assert.match(cookie, /; Secure/);
      assert.match(cookie, /HttpOnly/);
      const me = await tlsRequest(node, '/api/v1/identity/me', { headers: { Cookie: `egov_sid=${sid(r)}` } });
      assert.equal(me.status, 200, me.text);
      assert.equal(me.json.account.id, accountId);
      assert.equal(me.json.session.acr, 3);
      assert.equal(audited(node, 'identity.login.certificate'), before_ + 1);
    });

    test('GET works too, and the page route redirects only to same-origin paths', async () => {
      const g = await tlsRequest(node, '/api/v1/identity/login/certificate', client('auth'));
      assert.equal(g.status, 200, g.text);
      assert.equal(g.json.session.acr, 3);
      const ok = await tlsRequest(node, '/login/certificate?return=%2Faccount.html%3Ftab%3Dsessions', client('auth'));
      assert.equal(ok.status, 303);
      assert.equal(ok.headers.get('location'), '/account.html?tab=sessions');
      assert.ok(sid(ok));
      for (const evil of ['//evil.example/x', 'https://evil.example/', '/\\evil.example', '%2F%2Fevil.example']) {
        const r = await tlsRequest(node, `/login/certificate?return=${encodeURIComponent(evil)}`, client('auth'));
        assert.equal(r.status, 303, evil);
        assert.equal(r.headers.get('location'), '/account.html', evil);
      }
      const none = await tlsRequest(node, '/login/certificate?return=/x');
      assert.equal(none.status, 303);
      assert.equal(none.headers.get('location'), '/login.html?error=identity.cert_missing');
      assert.equal(sid(none), undefined);
    });

    test('no certificate: identity.cert_missing', async () => {
      const r = await tlsRequest(node, '/api/v1/identity/login/certificate', { method: 'POST' });
      assertProblem(r, { status: 401, code: 'identity.cert_missing' });
    });

    test('a certificate from a foreign self-signed CA: pki.cert_untrusted', async () => {
      const failed = audited(node, 'identity.login.certificate_failed');
      const r = await tlsRequest(node, '/api/v1/identity/login/certificate', { method: 'POST', ...client('foreign') });
      assertProblem(r, { status: 401, code: 'pki.cert_untrusted' });
      assert.equal(sid(r), undefined);
      assert.equal(audited(node, 'identity.login.certificate_failed'), failed + 1);
    });

    test('a person_sign certificate (no clientAuth): pki.cert_wrong_usage', async () => {
      const r = await tlsRequest(node, '/api/v1/identity/login/certificate', { method: 'POST', ...client('sign') });
      assertProblem(r, { status: 403, code: 'pki.cert_wrong_usage' });
    });

    test('an expired certificate under the platform CA: pki.cert_expired', async () => {
      // Signed with the node's own issuing key, as an operator with the key
      // could; notAfter lies in the past.
      openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', f('expired.key'), '-out', f('expired.csr'), '-subj', `/CN=Expired/UID=${accountId}`]);
      openssl(['x509', '-req', '-in', f('expired.csr'), '-CA', path.join(base.dataDir, 'pki', 'issuing.crt'),
        '-CAkey', path.join(base.dataDir, 'pki', 'issuing.key'), '-CAcreateserial', '-CAserial', f('expired.srl'),
        '-days', '-1', '-extfile', f('foreign.ext'), '-out', f('expired.pem')]);
      const r = await tlsRequest(node, '/api/v1/identity/login/certificate', { method: 'POST', ...client('expired') });
      assertProblem(r, { status: 401, code: 'pki.cert_expired' });
    });

    test('a platform certificate whose owner is no account: identity.cert_unknown_account', async () => {
      const r = await tlsRequest(node, '/api/v1/identity/login/certificate', { method: 'POST', ...client('stranger') });
      assertProblem(r, { status: 401, code: 'identity.cert_unknown_account' });
    });

    test('a forged X-Client-Cert header is ignored when the proxy list is empty', async () => {
      const r = await tlsRequest(node, '/api/v1/identity/login/certificate', {
        method: 'POST', headers: { 'X-Client-Cert': encodeURIComponent(pem('auth.pem')) },
      });
      assertProblem(r, { status: 401, code: 'identity.cert_missing' });
    });

    test('behind a trusted proxy the X-Client-Cert header logs in; from elsewhere it is ignored', async () => {
      const header = { 'X-Client-Cert': encodeURIComponent(pem('auth.pem')) };
      const proxied = await serve(base, adminConfig('trusted_proxies = 10.9.8.7, 127.0.0.1\n'));
      try {
        const r = await request(proxied, '/api/v1/identity/login/certificate', { method: 'POST', headers: header });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.session.acr, 3);
        const me = await request(proxied, '/api/v1/identity/me', { headers: { Cookie: `egov_sid=${sid(r)}` } });
        assert.equal(me.status, 200);
        assert.equal(me.json.session.acr, 3);
        assert.doesNotMatch(r.headers.get('set-cookie'), /Secure/, 'plain HTTP node: no Secure flag');
        const junk = await request(proxied, '/api/v1/identity/login/certificate', {
          method: 'POST', headers: { 'X-Client-Cert': 'not%20a%20certificate' },
        });
        assertProblem(junk, { status: 401, code: 'identity.cert_missing' });
      } finally {
        await proxied.stop();
      }
      const other = await serve(base, adminConfig('trusted_proxies = 10.9.8.7\n'));
      try {
        const r = await request(other, '/api/v1/identity/login/certificate', { method: 'POST', headers: header });
        assertProblem(r, { status: 401, code: 'identity.cert_missing' });
      } finally {
        await other.stop();
      }
    });

    test('after revocation the certificate is refused with pki.cert_revoked', async () => {
      const rv = await tlsRequest(node, `/api/v1/certificates/${authSerial}/revoke`, {
        method: 'POST', headers: auth, json: { reason: 'keyCompromise' },
      });
      assert.equal(rv.status, 200, rv.text);
      const r = await tlsRequest(node, '/api/v1/identity/login/certificate', { method: 'POST', ...client('auth') });
      assertProblem(r, { status: 401, code: 'pki.cert_revoked' });
      assert.equal(sid(r), undefined);
      const details = dbExec(node, "SELECT details FROM audit_log WHERE action = 'identity.login.certificate_failed' "
        + 'ORDER BY seq DESC LIMIT 1');
      assert.match(details, /pki\.cert_revoked/);
    });
  });
}

test('server.tls_cert without server.tls_key is refused at start', () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'egov-certlogin-cfg-'));
  try {
    const r = run(['serve', '--data', d, '--listen', '127.0.0.1:1'], {
      env: { ...process.env, EGOV_SERVER_TLS_CERT: '/nonexistent.pem' }, cwd: root,
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /server\.tls_cert.*server\.tls_key/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
