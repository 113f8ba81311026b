// The platform CA against a real node, checked with the real `openssl` CLI as
// the protocol peer: CA certificates and CRL (openssl verify / crl),
// issuing from a CSR made by `openssl req`, OCSP (`openssl ocsp -url`) good
// then revoked, RFC 3161 timestamps (`openssl ts`), audit checkpoints
// (`egov audit verify`), and bad input.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backends, run } from '../lib/egov.mjs';
import { adminConfig, assertProblem, auth, request, start, stopClean } from './lib/http.mjs';
import { assertConforms } from './lib/openapi.mjs';

function openssl(args, opts = {}) {
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 30000, ...opts });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

async function fetchBytes(url, opts = {}) {
  const res = await fetch(url, opts);
  return { status: res.status, type: res.headers.get('content-type'), headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

// Holds a binary answer from fetchBytes to docs/api/openapi.json.
const bytesConform = (method, p, r) => assertConforms(method, p, { status: r.status, headers: r.headers, text: r.body.toString('latin1') });

for (const backend of backends()) {
  describe(`pki (${backend})`, () => {
    let node;
    let dir;
    const f = (name) => path.join(dir, name);
    let cert; // the certificate issued through the API

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'egov-pki-'));
      node = await start(backend, 'pki', { config: adminConfig('[pki]\ncheckpoint_every = 2\n') });
    });
    after(async () => {
      await stopClean(node);
      rmSync(dir, { recursive: true, force: true });
    });

    test('egov init made the CA with private keys readable only by egov', () => {
      for (const k of ['root', 'issuing', 'tsa']) {
        const st = spawnSync('stat', ['-c', '%a', path.join(node.dataDir, 'pki', `${k}.key`)], { encoding: 'utf8' });
        assert.equal(st.stdout.trim(), '600', `${k}.key mode`);
      }
    });

    test('root and issuing certificates verify with openssl', async () => {
      for (const name of ['root', 'issuing']) {
        const r = await fetchBytes(`${node.url}/pki/${name}.crt`);
        assert.equal(r.status, 200);
        assert.equal(r.type, 'application/pkix-cert');
        bytesConform('GET', `/pki/${name}.crt`, r);
        writeFileSync(f(`${name}.der`), r.body);
        const conv = openssl(['x509', '-inform', 'der', '-in', f(`${name}.der`), '-out', f(`${name}.pem`)]);
        assert.equal(conv.status, 0, conv.out);
      }
      const v = openssl(['verify', '-CAfile', f('root.pem'), f('issuing.pem')]);
      assert.equal(v.status, 0, v.out);
      assert.match(v.out, /issuing\.pem: OK/);
      const text = openssl(['x509', '-in', f('root.pem'), '-noout', '-subject', '-ext', 'basicConstraints,keyUsage']);
      assert.match(text.out, /CN = egov Root CA/);
      assert.match(text.out, /CA:TRUE/);
      assert.match(text.out, /Certificate Sign, CRL Sign/);
    });

    test('a CSR from openssl req is issued through the API', async () => {
      const req = openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', f('user.key'), '-subj', '/CN=Chan Tai Man/O=Not Our Org', '-out', f('user.csr')]);
      assert.equal(req.status, 0, req.out);
      const r = await request(node, '/api/v1/certificates', {
        method: 'POST', headers: auth,
        json: { csr: readFileSync(f('user.csr'), 'utf8'), profile: 'person_auth', owner: 'resident-42' },
      });
      assert.equal(r.status, 201, r.text);
      assertConforms('POST', '/api/v1/certificates', r);
      assert.match(r.json.serial, /^[0-9a-f]{32}$/);
      assert.equal(r.headers.get('location'), `/api/v1/certificates/${r.json.serial}`);
      assert.equal(r.json.status, 'good');
      assert.equal(r.json.subject, 'CN=Chan Tai Man,UID=resident-42,O=egov,C=MO');
      cert = r.json;
      writeFileSync(f('user.pem'), cert.certificate);
      const v = openssl(['verify', '-CAfile', f('root.pem'), '-untrusted', f('issuing.pem'), '-purpose', 'sslclient', f('user.pem')]);
      assert.equal(v.status, 0, v.out);
      const text = openssl(['x509', '-in', f('user.pem'), '-noout', '-ext', 'keyUsage,extendedKeyUsage,crlDistributionPoints,authorityInfoAccess']);
      assert.match(text.out, /Digital Signature/);
      assert.match(text.out, /TLS Web Client Authentication/);
      assert.match(text.out, /\/pki\/issuing\.crl/);
      assert.match(text.out, /OCSP - URI:.*\/pki\/ocsp/);
      const got = await request(node, `/api/v1/certificates/${cert.serial.toUpperCase()}`, { headers: auth });
      assert.equal(got.status, 200);
      assertConforms('GET', `/api/v1/certificates/${cert.serial.toUpperCase()}`, got);
      assert.equal(got.json.certificate, cert.certificate);
    });

    const ocsp = () => openssl(['ocsp', '-issuer', f('issuing.pem'), '-cert', f('user.pem'),
      '-url', `${node.url}/pki/ocsp`, '-CAfile', f('root.pem')]);

    test('OCSP says good, and revoked after revocation; the CRL lists it', async () => {
      let o = ocsp();
      assert.equal(o.status, 0, o.out);
      assert.match(o.out, /Response verify OK/);
      assert.match(o.out, /user\.pem: good/);

      const rv = await request(node, `/api/v1/certificates/${cert.serial}/revoke`, {
        method: 'POST', headers: auth, json: { reason: 'keyCompromise' },
      });
      assert.equal(rv.status, 200, rv.text);
      assert.equal(rv.json.status, 'revoked');
      assert.equal(rv.json.reason, 'keyCompromise');
      assertConforms('POST', `/api/v1/certificates/${cert.serial}/revoke`, rv);
      const twice = await request(node, `/api/v1/certificates/${cert.serial}/revoke`, {
        method: 'POST', headers: auth, json: { reason: 'keyCompromise' },
      });
      assertProblem(twice, { status: 409, code: 'pki.cert_already_revoked' });
      assertConforms('POST', `/api/v1/certificates/${cert.serial}/revoke`, twice);

      o = ocsp();
      assert.equal(o.status, 0, o.out);
      assert.match(o.out, /Response verify OK/);
      assert.match(o.out, /user\.pem: revoked/);
      assert.match(o.out, /Reason: keyCompromise/);

      // GET form (RFC 6960 A.1), request without a nonce.
      const q = openssl(['ocsp', '-issuer', f('issuing.pem'), '-cert', f('user.pem'), '-no_nonce', '-reqout', f('q.ocsp')]);
      assert.equal(q.status, 0, q.out);
      // '/' stays raw: the kernel refuses %2F in paths (uri.encoded_slash).
      const b64 = readFileSync(f('q.ocsp')).toString('base64').replace(/\+/g, '%2B').replace(/=/g, '%3D');
      const g = await fetchBytes(`${node.url}/pki/ocsp/${b64}`);
      assert.equal(g.status, 200);
      assert.equal(g.type, 'application/ocsp-response');
      // A '/' of the base64 would split the path; the template has one segment.
      bytesConform('GET', `/pki/ocsp/${b64.replace(/\//g, '%2F')}`, g);
      writeFileSync(f('g.ocsp'), g.body);
      const gv = openssl(['ocsp', '-respin', f('g.ocsp'), '-issuer', f('issuing.pem'), '-cert', f('user.pem'),
        '-CAfile', f('root.pem'), '-no_nonce']);
      assert.match(gv.out, /user\.pem: revoked/, gv.out);
      // A request whose base64 holds "//" (the nonce makes each one differ):
      // the path parser folds empty segments, so the responder reads the raw target.
      let slashes = null;
      for (let i = 0; i < 400 && !slashes; i++) {
        const qi = openssl(['ocsp', '-issuer', f('issuing.pem'), '-cert', f('user.pem'), '-reqout', f('qs.ocsp')]);
        assert.equal(qi.status, 0, qi.out);
        const s64 = readFileSync(f('qs.ocsp')).toString('base64');
        if (s64.includes('//')) slashes = s64;
      }
      if (slashes) {
        const gs = await fetchBytes(`${node.url}/pki/ocsp/${slashes.replace(/\+/g, '%2B').replace(/=/g, '%3D')}`);
        assert.equal(gs.status, 200);
        writeFileSync(f('gs.ocsp'), gs.body);
        const gsv = openssl(['ocsp', '-respin', f('gs.ocsp'), '-issuer', f('issuing.pem'), '-cert', f('user.pem'),
          '-CAfile', f('root.pem'), '-no_nonce']);
        assert.match(gsv.out, /user\.pem: revoked/, gsv.out);
      }

      const crl = await fetchBytes(`${node.url}/pki/issuing.crl`);
      assert.equal(crl.status, 200);
      assert.equal(crl.type, 'application/pkix-crl');
      bytesConform('GET', '/pki/issuing.crl', crl);
      writeFileSync(f('crl.der'), crl.body);
      const c = openssl(['crl', '-inform', 'der', '-in', f('crl.der'), '-CAfile', f('issuing.pem'), '-noout', '-text']);
      assert.equal(c.status, 0, c.out);
      assert.match(c.out, /verify OK/);
      assert.match(c.out, new RegExp(`Serial Number: ${cert.serial.toUpperCase()}`));
      assert.match(c.out, /Key Compromise/);
      // And openssl verify with CRL checking refuses the certificate.
      writeFileSync(f('crl.pem'), openssl(['crl', '-inform', 'der', '-in', f('crl.der')]).out.replace(/^[^-]*/, ''));
      const vc = openssl(['verify', '-crl_check', '-CAfile', f('root.pem'), '-untrusted', f('issuing.pem'),
        '-CRLfile', f('crl.pem'), f('user.pem')]);
      assert.notEqual(vc.status, 0);
      assert.match(vc.out, /certificate revoked/);
    });

    test('a file timestamped by the TSA verifies with openssl ts', async () => {
      writeFileSync(f('doc.txt'), 'Official document 2026/123\n');
      const q = openssl(['ts', '-query', '-data', f('doc.txt'), '-sha256', '-cert', '-out', f('doc.tsq')]);
      assert.equal(q.status, 0, q.out);
      const r = await fetchBytes(`${node.url}/pki/tsa`, {
        method: 'POST', headers: { 'Content-Type': 'application/timestamp-query' }, body: readFileSync(f('doc.tsq')),
      });
      assert.equal(r.status, 200);
      assert.equal(r.type, 'application/timestamp-reply');
      bytesConform('POST', '/pki/tsa', r);
      writeFileSync(f('doc.tsr'), r.body);
      const v = openssl(['ts', '-verify', '-data', f('doc.txt'), '-in', f('doc.tsr'), '-CAfile', f('root.pem')]);
      assert.equal(v.status, 0, v.out);
      assert.match(v.out, /Verification: OK/);
      // The same reply does not verify for other data.
      writeFileSync(f('other.txt'), 'forged\n');
      const bad = openssl(['ts', '-verify', '-data', f('other.txt'), '-in', f('doc.tsr'), '-CAfile', f('root.pem')]);
      assert.notEqual(bad.status, 0);
      // A bad query gets a rejection, not an HTTP error.
      const junk = await fetchBytes(`${node.url}/pki/tsa`, {
        method: 'POST', headers: { 'Content-Type': 'application/timestamp-query' }, body: 'not a query',
      });
      assert.equal(junk.status, 200);
      bytesConform('POST', '/pki/tsa', junk);
      writeFileSync(f('junk.tsr'), junk.body);
      assert.match(openssl(['ts', '-reply', '-in', f('junk.tsr'), '-text']).out, /Status: Rejected/);
    });

    test('bad input: garbage CSR, unknown profile, weak key, wrong content type, malformed OCSP, no token', async () => {
      const csr = readFileSync(f('user.csr'), 'utf8');
      const post = (json, headers = auth) => request(node, '/api/v1/certificates', { method: 'POST', headers, json });
      const garbage = await post({ csr: 'garbage', profile: 'person_auth', owner: 'x' });
      assertProblem(garbage, { status: 400, code: 'pki.csr_invalid', field: 'csr' });
      assertConforms('POST', '/api/v1/certificates', garbage);
      const rootCa = await post({ csr, profile: 'root_ca', owner: 'x' });
      assertProblem(rootCa, { status: 400, code: 'pki.profile_unknown', field: 'profile' });
      assertConforms('POST', '/api/v1/certificates', rootCa);
      const weak = openssl(['req', '-new', '-newkey', 'rsa:1024', '-nodes', '-keyout', f('weak.key'),
        '-subj', '/CN=Weak', '-out', f('weak.csr')]);
      assert.equal(weak.status, 0, weak.out);
      assertProblem(await post({ csr: readFileSync(f('weak.csr'), 'utf8'), profile: 'person_auth', owner: 'x' }),
        { status: 400, code: 'pki.key_weak', field: 'csr' });
      const noauth = await post({ csr, profile: 'person_auth', owner: 'x' }, {});
      assert.equal(noauth.status, 401);
      assertConforms('POST', '/api/v1/certificates', noauth);
      const p12 = await fetchBytes(`${node.url}/api/v1/certificates/pkcs12`, {
        method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ profile: 'person_sign', owner: 'resident-43', cn: 'Lei Ka Man', passphrase: 'correct horse 43' }),
      });
      assert.equal(p12.status, 201);
      bytesConform('POST', '/api/v1/certificates/pkcs12', p12);
      const short = await request(node, '/api/v1/certificates/pkcs12', {
        method: 'POST', headers: auth, json: { profile: 'person_sign', owner: 'x', cn: 'X', passphrase: 'short' },
      });
      assertProblem(short, { status: 400, code: 'json.too_short', field: 'passphrase' });
      assertConforms('POST', '/api/v1/certificates/pkcs12', short);
      const unknown = await request(node, '/api/v1/certificates/00ff', { headers: auth });
      assertProblem(unknown, { status: 404, code: 'not_found' });
      assertConforms('GET', '/api/v1/certificates/00ff', unknown);

      const wrongType = await fetchBytes(`${node.url}/pki/ocsp`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}',
      });
      assert.equal(wrongType.status, 415);
      assertConforms('POST', '/pki/ocsp', { status: wrongType.status, headers: wrongType.headers, text: wrongType.body.toString('utf8'), json: JSON.parse(wrongType.body.toString('utf8')) });
      const mal = await fetchBytes(`${node.url}/pki/ocsp`, {
        method: 'POST', headers: { 'Content-Type': 'application/ocsp-request' }, body: 'definitely not DER',
      });
      assert.equal(mal.status, 200);
      assert.equal(mal.type, 'application/ocsp-response');
      bytesConform('POST', '/pki/ocsp', mal);
      writeFileSync(f('mal.ocsp'), mal.body);
      assert.match(openssl(['ocsp', '-respin', f('mal.ocsp'), '-resp_text']).out, /malformedrequest/i);
      const malGet = await fetchBytes(`${node.url}/pki/ocsp/%%%`);
      assert.ok([200, 400].includes(malGet.status));
      // The node still answers.
      assert.equal((await fetchBytes(`${node.url}/pki/root.crt`)).status, 200);
    });

    test('egov audit verify checks the timestamped checkpoints', async () => {
      // Issuing and revoking above wrote several audit records; checkpoint_every = 2.
      const out = run(['audit', 'verify', '--data', node.dataDir, '--database', node.database]);
      assert.equal(out.status, 0, out.stdout + out.stderr);
      const m = /(\d+) checkpoints verified/.exec(out.stdout);
      assert.ok(m, out.stdout);
      assert.ok(Number(m[1]) >= 1, out.stdout);
    });
  });
}
