// Certificates of an external national CA (pki.trust_anchors), linked to
// accounts: a CA of our own making with openssl stands for the national one
// (a self-signed root with cRLSign, person certificates with clientAuth, an
// `openssl ca` database for its CRL). The node serves plain HTTP behind a
// "proxy" (127.0.0.1 in server.trusted_proxies, X-Client-Cert as nginx's
// $ssl_client_escaped_cert). A user made with the CLI enrols TOTP, signs in
// with password + code (acr 2), links the external certificate, and then
// signs in with the certificate alone (acr 3). Refusals: no second factor,
// an own-CA certificate, a certificate linked elsewhere, an unlinked one, a
// re-issue with the same serial and another key, and one on the CA's CRL
// (the CRL file is replaced while the node runs).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backends, bin, freePort, root, run } from '../lib/egov.mjs';
import { adminConfig, ADMIN_TOKEN, assertProblem, dbExec, request, start } from './lib/http.mjs';

function openssl(args, opts = {}) {
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 30000, ...opts });
  assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

function base32Decode(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of s.replace(/=+$/, '').toUpperCase()) {
    value = (value << 5) | alphabet.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

// RFC 6238 (SHA-1, 6 digits, 30 s steps) at time t (ms).
function totp(secret, t = Date.now()) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(t / 1000 / 30)));
  const h = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const o = h[h.length - 1] & 0x0f;
  const v = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(v % 1000000).padStart(6, '0');
}

// `egov serve` on an existing data directory with a config of our own;
// resolves once /healthz answers.
async function serve(base, confText) {
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
    port, database: base.database, url: `http://127.0.0.1:${port}`, logs: () => out,
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
      const r = await request(node, '/healthz');
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`egov serve not ready: ${out}`); }
    await new Promise((r) => setTimeout(r, 30));
  }
  return node;
}

const auth = { Authorization: `Bearer ${ADMIN_TOKEN}` };
const sid = (res) => (res.headers.get('set-cookie') ?? '').match(/egov_sid=([^;]+)/)?.[1];
const PASSWORD = 'link-test-Passw0rd-long';

function audited(node, action) {
  return Number(dbExec(node, `SELECT count(*) FROM audit_log WHERE action = '${action}'`));
}

for (const backend of backends()) {
  describe(`external certificate links (${backend})`, () => {
    let base;
    let node;
    let dir;
    const users = {}; // name -> { id, email, secret }
    const f = (name) => path.join(dir, name);
    const pem = (name) => readFileSync(f(name), 'utf8');
    const certHeader = (name) => ({ 'X-Client-Cert': encodeURIComponent(pem(`${name}.pem`)) });

    // A person certificate from the external CA, with a serial of our choosing.
    function external(name, serial, key = name) {
      if (key === name) {
        openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
          '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/C=MO/O=eSign Test/CN=${name}`]);
      } else {
        openssl(['req', '-new', '-key', f(`${key}.key`), '-out', f(`${name}.csr`), '-subj', `/C=MO/O=eSign Test/CN=${name}`]);
      }
      openssl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ext-ca.pem'), '-CAkey', f('ext-ca.key'),
        '-set_serial', serial, '-days', '2', '-extfile', f('person.ext'), '-out', f(`${name}.pem`)]);
    }

    function makeCrl() {
      openssl(['ca', '-config', f('ca.cnf'), '-gencrl', '-out', f('crl.tmp')]);
      renameSync(f('crl.tmp'), f('crl.pem')); // atomically, as an operator's fetch job would
    }

    async function addUser(name) {
      const email = `${name}@example.org`;
      const r = run(['user', 'add', '--email', email, '--name', name, '--kind', 'resident', '--password-stdin',
        '--data', base.dataDir, '--database', base.database], { cwd: root, input: `${PASSWORD}\n` });
      assert.equal(r.status, 0, r.stderr);
      users[name] = { id: r.stdout.trim(), email };
    }

    async function passwordLogin(name) {
      const r = await request(node, '/api/v1/identity/login', {
        method: 'POST', json: { email: users[name].email, password: PASSWORD },
      });
      assert.equal(r.status, 200, r.text);
      return { cookie: `egov_sid=${sid(r)}`, csrf: r.json.csrf, json: r.json };
    }

    // Enrols TOTP from a password session; the code of the current step is
    // then spent, so the next login uses the following step's code.
    async function enrolTotp(name) {
      const s = await passwordLogin(name);
      const h = { Cookie: s.cookie, 'X-CSRF-Token': s.csrf };
      const e = await request(node, '/api/v1/identity/totp/enrol', { method: 'POST', headers: h, json: {} });
      assert.equal(e.status, 200, e.text);
      users[name].secret = e.json.secret;
      const c = await request(node, '/api/v1/identity/totp/confirm', {
        method: 'POST', headers: h, json: { code: totp(e.json.secret) },
      });
      assert.equal(c.status, 200, c.text);
    }

    // One acr 2 session per user, kept: the code of the next step is
    // single-use (replay protection), so a second login would have to wait.
    async function aal2Login(name) {
      if (users[name].session) return users[name].session;
      const p = await request(node, '/api/v1/identity/login', {
        method: 'POST', json: { email: users[name].email, password: PASSWORD },
      });
      assert.equal(p.status, 200, p.text);
      assert.equal(p.json.next, 'totp');
      const t = await request(node, '/api/v1/identity/login/totp', {
        method: 'POST', headers: { Cookie: `egov_sid=${sid(p)}` },
        json: { code: totp(users[name].secret, Date.now() + 30000) },
      });
      assert.equal(t.status, 200, t.text);
      assert.equal(t.json.session.acr, 2);
      users[name].session = { cookie: `egov_sid=${sid(t)}`, csrf: t.json.csrf };
      return users[name].session;
    }

    function link(s, certName, { csrf = s.csrf } = {}) {
      return request(node, '/api/v1/identity/me/certificate-link', {
        method: 'POST', headers: { Cookie: s.cookie, 'X-CSRF-Token': csrf, ...(certName ? certHeader(certName) : {}) },
      });
    }

    function certLogin(certName) {
      return request(node, '/api/v1/identity/login/certificate', { method: 'POST', headers: certHeader(certName) });
    }

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'egov-certlink-'));
      base = await start(backend, 'certlink', { config: adminConfig() });
      await base.stop({ keepData: true });
      await addUser('alice');
      await addUser('bob');

      // The "national CA": a root that signs people's certificates and its CRL.
      openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '3',
        '-keyout', f('ext-ca.key'), '-out', f('ext-ca.pem'), '-subj', '/C=MO/O=eSign Test/CN=Test National Root',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
      writeFileSync(f('person.ext'), 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
      writeFileSync(f('index.txt'), '');
      writeFileSync(f('crlnumber'), '01\n');
      writeFileSync(f('ca.cnf'), `[ca]\ndefault_ca = ext\n[ext]\ndatabase = ${f('index.txt')}\n`
        + `crlnumber = ${f('crlnumber')}\ncertificate = ${f('ext-ca.pem')}\nprivate_key = ${f('ext-ca.key')}\n`
        + 'default_md = sha256\ndefault_crl_days = 2\nunique_subject = no\n');
      external('alice-ext', '0x0A11CE01');
      external('revoked-ext', '0x0BAD0001');
      external('alice-reissued', '0x0A11CE01', 'revoked-ext'); // same serial, another key
      makeCrl(); // empty at first

      node = await serve(base, adminConfig('trusted_proxies = 127.0.0.1\n')
        + `[pki]\ntrust_anchors = ${f('ext-ca.pem')}\ntrust_anchor_crls = ${f('crl.pem')}\n`);

      // A certificate of the platform's own CA, for alice.
      openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', f('own.key'), '-subj', '/CN=own', '-out', f('own.csr')]);
      const own = await request(node, '/api/v1/certificates', {
        method: 'POST', headers: auth, json: { csr: pem('own.csr'), profile: 'person_auth', owner: users.alice.id },
      });
      assert.equal(own.status, 201, own.text);
      writeFileSync(f('own.pem'), own.json.certificate);

      await enrolTotp('alice');
      await enrolTotp('bob');
    });
    after(async () => {
      if (node) await node.stop();
      rmSync(dir, { recursive: true, force: true });
      if (base) rmSync(base.dataDir, { recursive: true, force: true });
    });

    test('before any link the external certificate verifies but maps to no account', async () => {
      const r = await certLogin('alice-ext');
      assertProblem(r, { status: 401, code: 'identity.cert_unknown_account' });
    });

    test('a session without the second factor cannot link: identity.aal2_required', async () => {
      // bob has TOTP: his password step alone gives a pending session, which
      // is no session at all here; a password-only account gets acr 1.
      run(['user', 'add', '--email', 'carol@example.org', '--name', 'carol', '--kind', 'resident',
        '--password-stdin', '--data', base.dataDir, '--database', base.database], { cwd: root, input: `${PASSWORD}\n` });
      const carol = await request(node, '/api/v1/identity/login', {
        method: 'POST', json: { email: 'carol@example.org', password: PASSWORD },
      });
      assert.equal(carol.status, 200, carol.text);
      assert.equal(carol.json.session.acr, 1);
      const failed = audited(node, 'identity.cert.link');
      const r = await link({ cookie: `egov_sid=${sid(carol)}`, csrf: carol.json.csrf }, 'alice-ext');
      assertProblem(r, { status: 403, code: 'identity.aal2_required' });
      const pending = await request(node, '/api/v1/identity/login', {
        method: 'POST', json: { email: users.bob.email, password: PASSWORD },
      });
      assert.equal(pending.json.next, 'totp');
      const p = await link({ cookie: `egov_sid=${sid(pending)}`, csrf: 'x' }, 'alice-ext');
      assertProblem(p, { status: 401, code: 'unauthorized' });
      assert.equal(audited(node, 'identity.cert.link'), failed);
    });

    test('alice (password + TOTP) links her external certificate; it then logs in alone at acr 3', async () => {
      const s = await aal2Login('alice');
      const noCsrf = await link(s, 'alice-ext', { csrf: 'wrong' });
      assertProblem(noCsrf, { status: 403, code: 'identity.csrf' });
      const noCert = await link(s, null);
      assertProblem(noCert, { status: 400, code: 'identity.cert_missing' });

      const linked = audited(node, 'identity.cert.link');
      const r = await link(s, 'alice-ext');
      assert.equal(r.status, 201, r.text);
      assert.equal(r.json.serial, 'a11ce01');
      assert.match(r.json.issuer, /CN=Test National Root/);
      assert.match(r.json.subject, /CN=alice-ext/);
      assert.match(r.json.spki_sha256, /^[0-9a-f]{64}$/);
      assert.equal(audited(node, 'identity.cert.link'), linked + 1);
      const again = await link(s, 'alice-ext');
      assert.equal(again.status, 200, again.text);
      assert.equal(audited(node, 'identity.cert.link'), linked + 1);

      const list = await request(node, '/api/v1/identity/me/certificate-links', { headers: { Cookie: s.cookie } });
      assert.equal(list.status, 200, list.text);
      assert.deepEqual(list.json.items.map((l) => l.serial), ['a11ce01']);
      const row = dbExec(node, `SELECT account_id FROM identity_cert_link WHERE serial_hex = 'a11ce01'`);
      assert.equal(row, users.alice.id);

      const ok = await certLogin('alice-ext');
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.json.account.id, users.alice.id);
      assert.equal(ok.json.session.acr, 3);
      const me = await request(node, '/api/v1/identity/me', { headers: { Cookie: `egov_sid=${sid(ok)}` } });
      assert.equal(me.status, 200);
      assert.equal(me.json.session.acr, 3);
      assert.equal(me.json.account.id, users.alice.id);
    });

    test('a certificate of the platform CA is not linked: identity.cert_platform', async () => {
      const s = await passwordLoginAcr3();
      const r = await link(s, 'own');
      assertProblem(r, { status: 400, code: 'identity.cert_platform' });
      assert.ok(audited(node, 'identity.cert.link_failed') >= 1);
    });

    // An acr 3 session of alice through her own-CA certificate (acr >= 2).
    async function passwordLoginAcr3() {
      const r = await certLogin('own');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.session.acr, 3);
      return { cookie: `egov_sid=${sid(r)}`, csrf: r.json.csrf };
    }

    test('another account cannot link the same certificate: 409 identity.cert_linked_elsewhere', async () => {
      const s = await aal2Login('bob');
      const r = await link(s, 'alice-ext');
      assertProblem(r, { status: 409, code: 'identity.cert_linked_elsewhere' });
      const ok = await certLogin('alice-ext');
      assert.equal(ok.json.account.id, users.alice.id, 'the link still names alice');
    });

    test('a re-issue with the same issuer and serial but another key does not ride on the link', async () => {
      const r = await certLogin('alice-reissued');
      assertProblem(r, { status: 401, code: 'identity.cert_unknown_account' });
    });

    test('on the external CA\'s CRL the certificate is refused: pki.cert_revoked', async () => {
      const s = await aal2Login('bob');
      const l = await link(s, 'revoked-ext');
      assert.equal(l.status, 201, l.text);
      const before_ = await certLogin('revoked-ext');
      assert.equal(before_.status, 200, before_.text);
      assert.equal(before_.json.account.id, users.bob.id);

      openssl(['ca', '-config', f('ca.cnf'), '-revoke', f('revoked-ext.pem'), '-crl_reason', 'keyCompromise']);
      makeCrl();
      const r = await certLogin('revoked-ext');
      assertProblem(r, { status: 401, code: 'pki.cert_revoked' });
      const again = await link(s, 'revoked-ext');
      assertProblem(again, { status: 403, code: 'pki.cert_revoked' });
      // Others of that CA still log in.
      const alice = await certLogin('alice-ext');
      assert.equal(alice.status, 200, alice.text);
      // A broken CRL file does not switch checking off: the last good one stays.
      writeFileSync(f('crl.tmp'), 'not a CRL');
      renameSync(f('crl.tmp'), f('crl.pem'));
      const still = await certLogin('revoked-ext');
      assertProblem(still, { status: 401, code: 'pki.cert_revoked' });
      makeCrl();
    });

    test('unlink: the certificate no longer logs in; unknown serials are 404', async () => {
      const s = await aal2Login('alice');
      const noCsrf = await request(node, '/api/v1/identity/me/certificate-links/A11CE01', {
        method: 'DELETE', headers: { Cookie: s.cookie },
      });
      assertProblem(noCsrf, { status: 403, code: 'identity.csrf' });
      const h = { Cookie: s.cookie, 'X-CSRF-Token': s.csrf };
      const bobs = await request(node, '/api/v1/identity/me/certificate-links/0bad0001', { method: 'DELETE', headers: h });
      assertProblem(bobs, { status: 404, code: 'not_found' });
      const unlinked = audited(node, 'identity.cert.unlink');
      const d = await request(node, '/api/v1/identity/me/certificate-links/0A11CE01', { method: 'DELETE', headers: h });
      assert.equal(d.status, 204, d.text);
      assert.equal(audited(node, 'identity.cert.unlink'), unlinked + 1);
      const list = await request(node, '/api/v1/identity/me/certificate-links', { headers: { Cookie: s.cookie } });
      assert.deepEqual(list.json.items, []);
      const r = await certLogin('alice-ext');
      assertProblem(r, { status: 401, code: 'identity.cert_unknown_account' });
      const bad = await request(node, '/api/v1/identity/me/certificate-links/xyz', { method: 'DELETE', headers: h });
      assertProblem(bad, { status: 404, code: 'not_found' });
    });
  });
}

test('pki.trust_anchor_crls naming a file without a CRL is refused at start', () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'egov-certlink-cfg-'));
  try {
    assert.equal(run(['init', '--data', d], { cwd: root }).status, 0);
    writeFileSync(path.join(d, 'junk.crl'), 'junk');
    const r = run(['serve', '--data', d, '--listen', '127.0.0.1:1'], {
      env: { ...process.env, EGOV_PKI_TRUST_ANCHOR_CRLS: path.join(d, 'junk.crl') }, cwd: root,
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /pki\.trust_anchor_crls/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
