// The account page's API against a real node: a resident made with
// `egov user add` logs in and manages their own e-certificates under
// /api/v1/identity/me/certificates (request from an `openssl req` CSR,
// download, `openssl verify` against the CA, revoke, OCSP says revoked,
// PKCS#12 opened with `openssl pkcs12`), cannot see or revoke another
// person's certificate (404), needs the CSRF token, and is refused the
// system profiles; and sees and withdraws the applications they allowed
// under /api/v1/identity/me/grants (after an OIDC code flow with consent;
// the refresh token stops working once withdrawn).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backends, run } from '../lib/egov.mjs';
import { adminConfig, assertProblem, auth, dbExec, request, start, stopClean } from './lib/http.mjs';
import { assertConforms } from './lib/openapi.mjs';

const PASSWORD = 'correct horse battery staple 42';
const REDIRECT = 'https://app.example.mo/callback';
const ME = '/api/v1/identity/me';
const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };
const form = (o) => new URLSearchParams(o).toString();
const b64url = (b) => Buffer.from(b).toString('base64url');

function openssl(args, opts = {}) {
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 60000, ...opts });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

for (const backend of backends()) {
  describe(`account self-service (${backend})`, () => {
    let node;
    let dir;
    const f = (name) => path.join(dir, name);
    const people = {};

    function addUser(email, name, kind = 'resident') {
      const add = run(['user', 'add', '--email', email, '--name', name, '--kind', kind, '--password-stdin',
        '--data', node.dataDir, '--database', node.database], { input: `${PASSWORD}\n` });
      assert.equal(add.status, 0, add.stderr);
    }

    async function login(email) {
      const r = await request(node, '/api/v1/identity/login', { method: 'POST', json: { email, password: PASSWORD } });
      assert.equal(r.status, 200, r.text);
      return { cookie: r.headers.get('set-cookie').split(';')[0], csrf: r.json.csrf, id: r.json.account.id };
    }

    // A request as person p; state changes carry the CSRF header unless told not to.
    const as = (p, url, { method = 'GET', json, csrf = true, headers = {} } = {}) => request(node, url, {
      method, json,
      headers: { Cookie: p.cookie, ...(csrf && method !== 'GET' ? { 'X-CSRF-Token': p.csrf } : {}), ...headers },
    });

    function newCsr(name) {
      const r = openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', f(`${name}.key`), '-subj', '/CN=Someone Else/O=Not Ours', '-out', f(`${name}.csr`)]);
      assert.equal(r.status, 0, r.out);
      return readFileSync(f(`${name}.csr`), 'utf8');
    }

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'egov-acct-'));
      node = await start(backend, 'account_self', { config: adminConfig() });
      addUser('ana@example.mo', 'Ana Lei');
      addUser('bruno@example.mo', 'Bruno Sousa');
      people.ana = await login('ana@example.mo');
      people.bruno = await login('bruno@example.mo');
      for (const name of ['root', 'issuing']) {
        const res = await fetch(`${node.url}/pki/${name}.crt`);
        assert.equal(res.status, 200);
        writeFileSync(f(`${name}.der`), Buffer.from(await res.arrayBuffer()));
        const conv = openssl(['x509', '-inform', 'der', '-in', f(`${name}.der`), '-out', f(`${name}.pem`)]);
        assert.equal(conv.status, 0, conv.out);
      }
    });
    after(async () => {
      await stopClean(node);
      rmSync(dir, { recursive: true, force: true });
    });

    let cert; // Ana's certificate from a CSR

    test('a resident requests a certificate from a CSR; the subject comes from the account', async () => {
      const empty = await as(people.ana, `${ME}/certificates`);
      assert.equal(empty.status, 200, empty.text);
      assertConforms('GET', `${ME}/certificates`, empty);
      assert.deepEqual(empty.json.items, []);

      const r = await as(people.ana, `${ME}/certificates`, { method: 'POST', json: { profile: 'person_auth', csr: newCsr('ana') } });
      assert.equal(r.status, 201, r.text);
      assertConforms('POST', `${ME}/certificates`, r);
      assert.equal(r.headers.get('location'), `${ME}/certificates/${r.json.serial}`);
      assert.equal(r.json.status, 'good');
      assert.equal(r.json.profile, 'person_auth');
      assert.equal(r.json.subject, `CN=Ana Lei,UID=${people.ana.id},O=egov,C=MO`);
      assert.equal(r.json.owner, undefined, 'the owner is the caller; not repeated');
      cert = r.json;

      const list = await as(people.ana, `${ME}/certificates`);
      assertConforms('GET', `${ME}/certificates`, list);
      assert.deepEqual(list.json.items.map((c) => [c.serial, c.status]), [[cert.serial, 'good']]);
      assert.equal(list.json.items[0].certificate, undefined);

      const audit = dbExec(node, `SELECT actor FROM audit_log WHERE action = 'pki.cert.issue' AND object = 'cert:${cert.serial}'`);
      assert.equal(audit, `account:${people.ana.id}`);
    });

    test('the certificate downloads as PEM and verifies against the CA with openssl', async () => {
      const d = await as(people.ana, `${ME}/certificates/${cert.serial.toUpperCase()}`);
      assert.equal(d.status, 200, d.text);
      assertConforms('GET', `${ME}/certificates/${cert.serial.toUpperCase()}`, d);
      assert.match(d.headers.get('content-type'), /^application\/x-pem-file/);
      assert.equal(d.headers.get('content-disposition'), `attachment; filename="egov-${cert.serial}.pem"`);
      assert.equal(d.text, cert.certificate);
      writeFileSync(f('ana.pem'), d.text);
      const v = openssl(['verify', '-CAfile', f('root.pem'), '-untrusted', f('issuing.pem'), '-purpose', 'sslclient', f('ana.pem')]);
      assert.equal(v.status, 0, v.out);
      // The key in the certificate is the CSR's.
      const a = openssl(['x509', '-in', f('ana.pem'), '-noout', '-pubkey']);
      const b = openssl(['pkey', '-in', f('ana.key'), '-pubout']);
      assert.equal(a.out, b.out);
      const j = await as(people.ana, `${ME}/certificates/${cert.serial}`, { headers: { Accept: 'application/json' } });
      assert.equal(j.status, 200);
      assertConforms('GET', `${ME}/certificates/${cert.serial}`, j);
      assert.equal(j.json.certificate, cert.certificate);
    });

    test("someone else's certificate is 404, to see and to revoke; unknown serials alike", async () => {
      const see = await as(people.bruno, `${ME}/certificates/${cert.serial}`);
      assertProblem(see, { status: 404, code: 'not_found' });
      assertConforms('GET', `${ME}/certificates/${cert.serial}`, see);
      const rv = await as(people.bruno, `${ME}/certificates/${cert.serial}/revoke`, { method: 'POST', json: { reason: 'keyCompromise' } });
      assertProblem(rv, { status: 404, code: 'not_found' });
      assertConforms('POST', `${ME}/certificates/${cert.serial}/revoke`, rv);
      const unknown = await as(people.bruno, `${ME}/certificates/${'ab'.repeat(16)}`);
      assertProblem(unknown, { status: 404, code: 'not_found' });
      const junk = await as(people.bruno, `${ME}/certificates/not-hex`);
      assertProblem(junk, { status: 404, code: 'not_found' });
      const theirs = await as(people.bruno, `${ME}/certificates`);
      assert.deepEqual(theirs.json.items, []);
      const still = await as(people.ana, `${ME}/certificates/${cert.serial}`, { headers: { Accept: 'application/json' } });
      assert.equal(still.json.status, 'good');
    });

    test('sign-in and CSRF are required; system profiles and CA-only reasons are refused', async () => {
      const anon = await request(node, `${ME}/certificates`);
      assertProblem(anon, { status: 401, code: 'unauthorized' });
      assertConforms('GET', `${ME}/certificates`, anon);
      const noCsrf = await as(people.ana, `${ME}/certificates`, { method: 'POST', csrf: false, json: { profile: 'person_auth', csr: newCsr('x') } });
      assertProblem(noCsrf, { status: 403, code: 'identity.csrf' });
      assertConforms('POST', `${ME}/certificates`, noCsrf);
      const wrongCsrf = await as(people.ana, `${ME}/certificates/${cert.serial}/revoke`, {
        method: 'POST', csrf: false, headers: { 'X-CSRF-Token': 'x'.repeat(43) }, json: { reason: 'superseded' },
      });
      assertProblem(wrongCsrf, { status: 403, code: 'identity.csrf' });
      const bearer = await request(node, `${ME}/certificates`, { headers: auth });
      assertProblem(bearer, { status: 401, code: 'unauthorized' });

      for (const profile of ['system_sign', 'system_tls_client']) {
        const staffOnly = await as(people.ana, `${ME}/certificates`, { method: 'POST', json: { profile, csr: newCsr('s') } });
        assertProblem(staffOnly, { status: 403, code: 'pki.profile_forbidden', field: 'profile' });
        assertConforms('POST', `${ME}/certificates`, staffOnly);
      }
      const unknown = await as(people.ana, `${ME}/certificates`, { method: 'POST', json: { profile: 'root_ca', csr: newCsr('u') } });
      assertProblem(unknown, { status: 400, code: 'pki.profile_unknown', field: 'profile' });
      const bad = await as(people.ana, `${ME}/certificates`, { method: 'POST', json: { profile: 'person_auth', csr: 'not a csr' } });
      assertProblem(bad, { status: 400, code: 'pki.csr_invalid', field: 'csr' });
      const owner = await as(people.ana, `${ME}/certificates`, { method: 'POST', json: { profile: 'person_auth', csr: newCsr('o'), owner: 'someone' } });
      assertProblem(owner, { status: 400, code: 'json.unknown_field', field: 'owner' });
      const caReason = await as(people.ana, `${ME}/certificates/${cert.serial}/revoke`, { method: 'POST', json: { reason: 'cACompromise' } });
      assertProblem(caReason, { status: 400, code: 'pki.reason_forbidden', field: 'reason' });
      assertConforms('POST', `${ME}/certificates/${cert.serial}/revoke`, caReason);
      const titles = await as(people.ana, `${ME}/certificates?lang=pt`, { method: 'POST', json: { profile: 'system_sign', csr: newCsr('t') } });
      assertProblem(titles, { status: 403, code: 'pki.profile_forbidden', field: 'profile', lang: 'pt' });
      const none = dbExec(node, "SELECT COUNT(*) FROM pki_cert WHERE profile LIKE 'system_%'");
      assert.equal(none, '0');
    });

    test('revoking one’s own certificate: status revoked, OCSP revoked, audited with the account as actor', async () => {
      const ocsp = () => openssl(['ocsp', '-issuer', f('issuing.pem'), '-cert', f('ana.pem'),
        '-url', `${node.url}/pki/ocsp`, '-CAfile', f('root.pem')]);
      let o = ocsp();
      assert.equal(o.status, 0, o.out);
      assert.match(o.out, /ana\.pem: good/);
      const rv = await as(people.ana, `${ME}/certificates/${cert.serial}/revoke`, { method: 'POST', json: { reason: 'keyCompromise' } });
      assert.equal(rv.status, 200, rv.text);
      assertConforms('POST', `${ME}/certificates/${cert.serial}/revoke`, rv);
      assert.equal(rv.json.status, 'revoked');
      assert.equal(rv.json.reason, 'keyCompromise');
      const again = await as(people.ana, `${ME}/certificates/${cert.serial}/revoke`, { method: 'POST', json: {} });
      assertProblem(again, { status: 409, code: 'pki.cert_already_revoked' });
      const list = await as(people.ana, `${ME}/certificates`);
      assert.equal(list.json.items.find((c) => c.serial === cert.serial).status, 'revoked');
      o = ocsp();
      assert.equal(o.status, 0, o.out);
      assert.match(o.out, /ana\.pem: revoked/);
      assert.match(o.out, /Reason: keyCompromise/);
      const actor = dbExec(node, `SELECT actor FROM audit_log WHERE action = 'pki.cert.revoke' AND object = 'cert:${cert.serial}'`);
      assert.equal(actor, `account:${people.ana.id}`);
    });

    test('a PKCS#12 bundle opens with openssl pkcs12 and holds a key for its certificate', async () => {
      const pass = 'a bundle pass phrase';
      const res = await fetch(`${node.url}${ME}/certificates/pkcs12`, {
        method: 'POST',
        headers: { Cookie: people.bruno.cookie, 'X-CSRF-Token': people.bruno.csrf, 'Content-Type': 'application/json' },
        body: JSON.stringify({ profile: 'person_sign', passphrase: pass }),
      });
      const body = Buffer.from(await res.arrayBuffer());
      assert.equal(res.status, 201, body.toString());
      assertConforms('POST', `${ME}/certificates/pkcs12`, { status: res.status, headers: res.headers, text: body.toString('latin1') });
      assert.equal(res.headers.get('content-type'), 'application/pkcs12');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const serial = res.headers.get('x-certificate-serial');
      writeFileSync(f('bruno.p12'), body);
      const wrong = openssl(['pkcs12', '-in', f('bruno.p12'), '-passin', 'pass:wrong passphrase', '-nodes', '-out', f('bad.pem')]);
      assert.notEqual(wrong.status, 0);
      const open = openssl(['pkcs12', '-in', f('bruno.p12'), '-passin', `pass:${pass}`, '-nodes', '-out', f('bruno-all.pem')]);
      assert.equal(open.status, 0, open.out);
      const all = readFileSync(f('bruno-all.pem'), 'utf8');
      assert.match(all, /BEGIN PRIVATE KEY/);
      const certs = openssl(['pkcs12', '-in', f('bruno.p12'), '-passin', `pass:${pass}`, '-nokeys', '-clcerts', '-out', f('bruno.pem')]);
      assert.equal(certs.status, 0, certs.out);
      const subj = openssl(['x509', '-in', f('bruno.pem'), '-noout', '-subject', '-serial']);
      assert.match(subj.out, new RegExp(`UID = ${people.bruno.id}`));
      assert.match(subj.out.toLowerCase(), new RegExp(`serial=0*${serial}`));
      const v = openssl(['verify', '-CAfile', f('root.pem'), '-untrusted', f('issuing.pem'), f('bruno.pem')]);
      assert.equal(v.status, 0, v.out);
      const list = await as(people.bruno, `${ME}/certificates`);
      assert.deepEqual(list.json.items.map((c) => [c.serial, c.profile]), [[serial, 'person_sign']]);
      const short = await as(people.bruno, `${ME}/certificates/pkcs12`, { method: 'POST', json: { profile: 'person_sign', passphrase: 'short' } });
      assert.equal(short.status, 400);
      assertConforms('POST', `${ME}/certificates/pkcs12`, short);
      const forbidden = await as(people.bruno, `${ME}/certificates/pkcs12`, { method: 'POST', json: { profile: 'system_sign', passphrase: pass } });
      assertProblem(forbidden, { status: 403, code: 'pki.profile_forbidden', field: 'profile' });
    });

    test('a person holds at most 10 live certificates', async () => {
      const p = await login('ana@example.mo');
      const live = () => Number(dbExec(node, `SELECT COUNT(*) FROM pki_cert WHERE owner = '${p.id}' AND status = 'good'`));
      const csr = newCsr('many');
      while (live() < 10) {
        const r = await as(p, `${ME}/certificates`, { method: 'POST', json: { profile: 'person_sign', csr } });
        assert.equal(r.status, 201, r.text);
      }
      const over = await as(p, `${ME}/certificates`, { method: 'POST', json: { profile: 'person_sign', csr } });
      assertProblem(over, { status: 409, code: 'pki.cert_limit' });
      assertConforms('POST', `${ME}/certificates`, over);
    });

    describe('granted applications', () => {
      let client;
      let tokens;

      before(async () => {
        const r = await request(node, '/api/v1/oidc/clients', {
          method: 'POST', headers: auth,
          json: { name: 'Macao Library', type: 'public', redirect_uris: [REDIRECT], scopes: ['openid', 'email', 'profile'] },
        });
        assert.equal(r.status, 201, r.text);
        client = r.json;
      });

      // The code flow with PKCE and consent, as Bruno.
      async function codeFlow() {
        const verifier = b64url(randomBytes(32));
        const challenge = b64url(createHash('sha256').update(verifier).digest());
        const q = form({
          response_type: 'code', client_id: client.client_id, redirect_uri: REDIRECT, scope: 'openid email',
          state: 's1', nonce: 'n1', code_challenge: challenge, code_challenge_method: 'S256',
        });
        let r = await request(node, `/oidc/authorize?${q}`, { headers: { Cookie: people.bruno.cookie } });
        if (r.status === 200) {
          const fields = Object.fromEntries([...r.text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)]
            .map((m) => [m[1], m[2].replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'")]));
          r = await request(node, '/oidc/authorize/consent', {
            method: 'POST', headers: { ...FORM, Cookie: people.bruno.cookie }, body: form({ ...fields, decision: 'allow' }),
          });
        }
        assert.ok([302, 303].includes(r.status), `${r.status} ${r.text}`);
        const code = new URL(r.headers.get('location')).searchParams.get('code');
        assert.ok(code);
        const t = await request(node, '/oidc/token', {
          method: 'POST', headers: FORM,
          body: form({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: client.client_id, code_verifier: verifier }),
        });
        assert.equal(t.status, 200, t.text);
        return t.json;
      }

      test('after consenting, the application is listed', async () => {
        tokens = await codeFlow();
        const g = await as(people.bruno, `${ME}/grants`);
        assert.equal(g.status, 200, g.text);
        assertConforms('GET', `${ME}/grants`, g);
        assert.equal(g.json.items.length, 1);
        const [grant] = g.json.items;
        assert.equal(grant.client_id, client.client_id);
        assert.equal(grant.name, 'Macao Library');
        assert.deepEqual(grant.scopes, ['openid', 'email']);
        assert.ok(Date.parse(grant.granted_at) > 0);
        const other = await as(people.ana, `${ME}/grants`);
        assert.deepEqual(other.json.items, []);
        const anon = await request(node, `${ME}/grants`);
        assertProblem(anon, { status: 401, code: 'unauthorized' });
        assertConforms('GET', `${ME}/grants`, anon);
      });

      test('withdrawing needs CSRF, removes the grant and stops the refresh token', async () => {
        const noCsrf = await as(people.bruno, `${ME}/grants/${client.client_id}`, { method: 'DELETE', csrf: false });
        assertProblem(noCsrf, { status: 403, code: 'identity.csrf' });
        assertConforms('DELETE', `${ME}/grants/${client.client_id}`, noCsrf);
        const notHers = await as(people.ana, `${ME}/grants/${client.client_id}`, { method: 'DELETE' });
        assertProblem(notHers, { status: 404, code: 'not_found' });

        // The refresh token works before (and rotates).
        const r1 = await request(node, '/oidc/token', {
          method: 'POST', headers: FORM, body: form({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: client.client_id }),
        });
        assert.equal(r1.status, 200, r1.text);

        const del = await as(people.bruno, `${ME}/grants/${client.client_id}`, { method: 'DELETE' });
        assert.equal(del.status, 204, del.text);
        assertConforms('DELETE', `${ME}/grants/${client.client_id}`, del);
        const g = await as(people.bruno, `${ME}/grants`);
        assert.deepEqual(g.json.items, []);
        const r2 = await request(node, '/oidc/token', {
          method: 'POST', headers: FORM, body: form({ grant_type: 'refresh_token', refresh_token: r1.json.refresh_token, client_id: client.client_id }),
        });
        assert.equal(r2.status, 400, r2.text);
        assert.equal(r2.json.error, 'invalid_grant');
        const twice = await as(people.bruno, `${ME}/grants/${client.client_id}`, { method: 'DELETE' });
        assertProblem(twice, { status: 404, code: 'not_found' });
        assertConforms('DELETE', `${ME}/grants/${client.client_id}`, twice);
        const actor = dbExec(node, `SELECT actor FROM audit_log WHERE action = 'oidc.grant.withdraw' AND object = 'oidc_client:${client.client_id}'`);
        assert.equal(actor, `account:${people.bruno.id}`);

        // The next sign-in asks for consent again.
        const q = form({
          response_type: 'code', client_id: client.client_id, redirect_uri: REDIRECT, scope: 'openid email',
          state: 's2', nonce: 'n2', code_challenge: b64url(createHash('sha256').update('v'.repeat(43)).digest()), code_challenge_method: 'S256',
        });
        const again = await request(node, `/oidc/authorize?${q}`, { headers: { Cookie: people.bruno.cookie } });
        assert.equal(again.status, 200, 'consent page shown again');
        assert.match(again.text, /decision/);
      });
    });
  });
}
