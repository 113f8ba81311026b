// The data exchange registry on a central node (admin API on every backend:
// happy paths and bad input, audited changes, certificates through the
// platform CA), the signed global configuration it publishes (checked with
// node's own crypto against DATA/exchange/central.crt), and a gateway node
// that downloads and verifies it, keeps its last copy when the central node
// is down, reports it expired, and refuses one signed by another key.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backends, root, run, startEgov } from '../lib/egov.mjs';
import { adminConfig, assertProblem, auth, dbExec, request, start, stopClean } from './lib/http.mjs';
import { assertConforms } from './lib/openapi.mjs';

const post = (node, p, json, headers = auth) => request(node, p, { method: 'POST', headers, json });
const del = (node, p) => request(node, p, { method: 'DELETE', headers: auth });

function openssl(args) {
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 30000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

// The node's CLI on its own data directory and database.
const cli = (node, ...args) => {
  const conf = path.join(node.dataDir, 'test.conf');
  return run(['exchange', ...args, '--data', node.dataDir, '--database', node.database,
    ...(existsSync(conf) ? ['--config', conf] : [])]);
};

// Splits and checks a compact JWS the way a gateway must: ES256 by the
// pinned certificate, which is also the header's x5c.
function verifyJws(jws, certPem) {
  const [h, p, s] = jws.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
  assert.equal(header.alg, 'ES256');
  assert.equal(header.typ, 'egov-globalconf');
  const cert = new crypto.X509Certificate(certPem);
  assert.deepEqual(Buffer.from(header.x5c[0], 'base64'), cert.raw);
  const ok = crypto.verify('sha256', Buffer.from(`${h}.${p}`), { key: cert.publicKey, dsaEncoding: 'ieee-p1363' },
    Buffer.from(s, 'base64url'));
  assert.ok(ok, 'signature verifies with the central certificate');
  return JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
}

async function until(what, fn, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const M = 'MO/GOV/DSAJ';
const SUB = 'MO/GOV/DSAJ/REG';
const SVC = 'MO/GOV/DSAJ/REG/persons';
const CLIENT_M = 'MO/GOV/DSB';
const CLIENT = 'MO/GOV/DSB/APP';

for (const backend of backends()) {
  describe(`exchange registry (${backend})`, () => {
    let node;
    let dir;

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'egov-exreg-'));
      node = await start(backend, 'exreg', { config: adminConfig('role = central\n[exchange]\nconf_validity_s = 120\n') });
    });
    after(async () => {
      await stopClean(node);
      rmSync(dir, { recursive: true, force: true });
    });

    test('without a signing key the configuration is not published', async () => {
      const r = await request(node, '/exchange/v1/globalconf');
      assertProblem(r, { status: 503, code: 'exchange.conf_missing' });
      assertConforms('GET', '/exchange/v1/globalconf', r);
    });

    test('egov exchange central init makes the key once, readable only by egov', () => {
      const a = cli(node, 'central', 'init');
      assert.equal(a.status, 0, a.stderr);
      const key = path.join(node.dataDir, 'exchange/central.key');
      assert.equal(statSync(key).mode & 0o777, 0o600);
      const before1 = readFileSync(key);
      const b = cli(node, 'central', 'init');
      assert.equal(b.status, 0, b.stderr);
      assert.match(b.stderr, /exists/);
      assert.deepEqual(readFileSync(key), before1);
      const text = openssl(['x509', '-in', path.join(node.dataDir, 'exchange/central.crt'), '-noout', '-subject', '-issuer']);
      assert.match(text.out, /UID = exchange:central/);
      assert.match(text.out, /issuer=.*egov/);
    });

    test('admin routes need the exchange.admin permission', async () => {
      const r = await request(node, '/api/v1/exchange/members');
      assertProblem(r, { status: 401, code: 'unauthorized' });
      const w = await post(node, '/api/v1/exchange/members', { id: M, name: 'x' }, {});
      assertProblem(w, { status: 401, code: 'unauthorized' });
    });

    test('members: add, read, list, refusals', async () => {
      const r = await post(node, '/api/v1/exchange/members', { id: M, name: '法務局 DSAJ' });
      assert.equal(r.status, 201, r.text);
      assertConforms('POST', '/api/v1/exchange/members', r);
      assert.equal(r.headers.get('location'), `/api/v1/exchange/members/${M}`);
      assert.equal(r.json.name, '法務局 DSAJ');
      assert.equal((await post(node, '/api/v1/exchange/members', { id: CLIENT_M, name: 'DSB' })).status, 201);
      const one = await request(node, `/api/v1/exchange/members/${M}`, { headers: auth });
      assert.equal(one.status, 200);
      assertConforms('GET', `/api/v1/exchange/members/${M}`, one);
      const list = await request(node, '/api/v1/exchange/members', { headers: auth });
      assertConforms('GET', '/api/v1/exchange/members', list);
      assert.deepEqual(list.json.items.map((m) => m.id), [M, CLIENT_M]);

      assertProblem(await post(node, '/api/v1/exchange/members', { id: M, name: 'again' }),
        { status: 409, code: 'exchange.exists', field: 'id' });
      for (const id of ['MO/GOV', 'MO/GOV/DS AJ', 'MO//X', 'MO/GOV/X/', 'HK/GOV/X', 'MO/GOV/澳門']) {
        const bad = await post(node, '/api/v1/exchange/members', { id, name: 'x' });
        assertProblem(bad, { status: 400, code: 'validation.invalid_field', field: 'id' });
        assertConforms('POST', '/api/v1/exchange/members', bad);
      }
      assertProblem(await post(node, '/api/v1/exchange/members', { id: 'MO/GOV/X' }),
        { status: 400, code: 'json.missing_field', field: 'name' });
      assertProblem(await post(node, '/api/v1/exchange/members', { id: 'MO/GOV/X', name: 'x', extra: 1 }),
        { status: 400, code: 'json.unknown_field', field: 'extra' });
      assertProblem(await post(node, '/api/v1/exchange/members', { id: 'MO/GOV/X', name: 7 }),
        { status: 400, code: 'json.wrong_type', field: 'name' });
      assertProblem(await post(node, '/api/v1/exchange/members', { id: 'MO/GOV/X', name: 'x'.repeat(201) }),
        { status: 400, code: 'validation.invalid_field', field: 'name' });
      const nf = await request(node, '/api/v1/exchange/members/MO/GOV/NONE', { headers: auth });
      assertProblem(nf, { status: 404, code: 'exchange.unknown_member' });
      assertConforms('GET', '/api/v1/exchange/members/MO/GOV/NONE', nf);
      assertProblem(await request(node, '/api/v1/exchange/members/MO/GOV', { headers: auth }),
        { status: 404, code: 'exchange.unknown_member' });
    });

    test('subsystems: the member must exist, the gateway is https://HOST:PORT', async () => {
      const r = await post(node, '/api/v1/exchange/subsystems', { id: SUB, gateway: 'https://127.0.0.1:5501' });
      assert.equal(r.status, 201, r.text);
      assertConforms('POST', '/api/v1/exchange/subsystems', r);
      assert.equal(r.json.member, M);
      assert.equal((await post(node, '/api/v1/exchange/subsystems', { id: CLIENT, gateway: 'https://127.0.0.1:5502' })).status, 201);
      assertProblem(await post(node, '/api/v1/exchange/subsystems', { id: 'MO/GOV/NONE/X', gateway: 'https://a:1' }),
        { status: 404, code: 'exchange.unknown_member', field: 'id' });
      for (const gateway of ['http://127.0.0.1:5501', 'https://127.0.0.1:5501/path', 'https://h:0', 'ftp://x']) {
        assertProblem(await post(node, '/api/v1/exchange/subsystems', { id: `${M}/NEW`, gateway }),
          { status: 400, code: 'validation.invalid_field', field: 'gateway' });
      }
      const list = await request(node, `/api/v1/exchange/subsystems?member=${M}`, { headers: auth });
      assertConforms('GET', `/api/v1/exchange/subsystems?member=${M}`, list);
      assert.deepEqual(list.json.items.map((s) => s.id), [SUB]);
      assertProblem(await request(node, '/api/v1/exchange/subsystems?member=bad', { headers: auth }),
        { status: 400, code: 'validation.invalid_field', field: 'member' });
    });

    test('services: OpenAPI description, log mode, size limit', async () => {
      const openapi = { openapi: '3.1.0', info: { title: 'Persons', version: '1' }, paths: {} };
      const r = await post(node, '/api/v1/exchange/services', { id: SVC, title: 'Persons', log: 'digest', max_body: 4096, openapi });
      assert.equal(r.status, 201, r.text);
      assertConforms('POST', '/api/v1/exchange/services', r);
      assert.deepEqual(r.json.openapi, openapi);
      assert.equal(r.json.log, 'digest');
      const plain = await post(node, '/api/v1/exchange/services', { id: `${SUB}/health` });
      assert.equal(plain.status, 201, plain.text);
      assert.equal(plain.json.log, 'full');
      assert.equal(plain.json.max_body, 1048576);
      assertProblem(await post(node, '/api/v1/exchange/services', { id: `${M}/NONE/x` }),
        { status: 404, code: 'exchange.unknown_subsystem', field: 'id' });
      assertProblem(await post(node, '/api/v1/exchange/services', { id: `${SUB}/x`, log: 'all' }),
        { status: 400, code: 'validation.invalid_field', field: 'log' });
      assertProblem(await post(node, '/api/v1/exchange/services', { id: `${SUB}/x`, openapi: [1] }),
        { status: 400, code: 'validation.invalid_field', field: 'openapi' });
      assertProblem(await post(node, '/api/v1/exchange/services', { id: `${SUB}/x`, max_body: 0 }),
        { status: 400, code: 'json.out_of_range', field: 'max_body' });
      assertProblem(await post(node, '/api/v1/exchange/services', { id: SUB }),
        { status: 400, code: 'validation.invalid_field', field: 'id' });
      const one = await request(node, `/api/v1/exchange/services/${SVC}`, { headers: auth });
      assertConforms('GET', `/api/v1/exchange/services/${SVC}`, one);
      assert.deepEqual(one.json.openapi, openapi);
    });

    test('access rights: grant, replace, refusals, revoke', async () => {
      const g = await post(node, '/api/v1/exchange/access', { client: CLIENT, service: SVC, methods: 'GET', paths: '/persons/*' });
      assert.equal(g.status, 201, g.text);
      assertConforms('POST', '/api/v1/exchange/access', g);
      assert.equal(g.headers.get('location'), `/api/v1/exchange/access/${CLIENT}/${SVC}`);
      const again = await post(node, '/api/v1/exchange/access', { client: CLIENT, service: SVC, methods: 'GET,POST', paths: '/persons/*,/count' });
      assert.equal(again.status, 200, again.text);
      assertConforms('POST', '/api/v1/exchange/access', again);
      assert.equal(again.json.methods, 'GET,POST');
      for (const [field, body] of [
        ['methods', { methods: 'get' }], ['methods', { methods: 'GET,' }], ['methods', { methods: 'TRACE' }],
        ['paths', { paths: 'persons' }], ['paths', { paths: '/a*' }], ['paths', { paths: '/a b' }],
        ['client', { client: 'MO/GOV/DSB' }], ['service', { service: SUB }],
      ]) {
        assertProblem(await post(node, '/api/v1/exchange/access', { client: CLIENT, service: SVC, ...body }),
          { status: 400, code: 'validation.invalid_field', field });
      }
      assertProblem(await post(node, '/api/v1/exchange/access', { client: CLIENT, service: `${SUB}/none` }),
        { status: 404, code: 'exchange.unknown_service', field: 'service' });
      assertProblem(await post(node, '/api/v1/exchange/access', { client: `${CLIENT_M}/NONE`, service: SVC }),
        { status: 404, code: 'exchange.unknown_subsystem', field: 'client' });
      assert.equal((await post(node, '/api/v1/exchange/access', { client: CLIENT, service: `${SUB}/health` })).status, 201);
      const list = await request(node, `/api/v1/exchange/access?subsystem=${CLIENT}`, { headers: auth });
      assertConforms('GET', `/api/v1/exchange/access?subsystem=${CLIENT}`, list);
      assert.equal(list.json.items.length, 2);
      const rv = await del(node, `/api/v1/exchange/access/${CLIENT}/${SUB}/health`);
      assert.equal(rv.status, 204, rv.text);
      assertConforms('DELETE', `/api/v1/exchange/access/${CLIENT}/${SUB}/health`, rv);
      const twice = await del(node, `/api/v1/exchange/access/${CLIENT}/${SUB}/health`);
      assertProblem(twice, { status: 404, code: 'exchange.unknown_access' });
    });

    test('event types, and removing what is still in use', async () => {
      const e = await post(node, '/api/v1/exchange/event-types', { id: `${SUB}/person-changed` });
      assert.equal(e.status, 201, e.text);
      assertConforms('POST', '/api/v1/exchange/event-types', e);
      assertProblem(await post(node, '/api/v1/exchange/event-types', { id: `${SUB}/person-changed` }),
        { status: 409, code: 'exchange.exists' });
      const inUse = await del(node, `/api/v1/exchange/members/${M}`);
      assertProblem(inUse, { status: 409, code: 'exchange.in_use' });
      assertConforms('DELETE', `/api/v1/exchange/members/${M}`, inUse);
      assertProblem(await del(node, `/api/v1/exchange/subsystems/${SUB}`), { status: 409, code: 'exchange.in_use' });
      assertProblem(await del(node, `/api/v1/exchange/services/${SUB}/nothing`), { status: 404, code: 'exchange.unknown_service' });
      const gone = await del(node, `/api/v1/exchange/services/${SUB}/health`);
      assert.equal(gone.status, 204);
    });

    let signCert;
    test('certificates: issued from a CSR by the platform CA, or refused', async () => {
      const key = path.join(dir, 'reg.key');
      const csr = path.join(dir, 'reg.csr');
      const k = openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', key, '-subj', '/CN=REG', '-out', csr]);
      assert.equal(k.status, 0, k.out);
      const r = await post(node, '/api/v1/exchange/certs', { subsystem: SUB, usage: 'sign', csr: readFileSync(csr, 'utf8') });
      assert.equal(r.status, 201, r.text);
      assertConforms('POST', '/api/v1/exchange/certs', r);
      assert.equal(r.json.platform, true);
      assert.match(r.json.certificate, /BEGIN CERTIFICATE/);
      signCert = r.json;
      writeFileSync(path.join(dir, 'reg.crt'), r.json.certificate);
      const text = openssl(['x509', '-in', path.join(dir, 'reg.crt'), '-noout', '-subject']);
      assert.match(text.out, new RegExp(`UID = ${SUB}`));
      const fp = new crypto.X509Certificate(r.json.certificate).fingerprint256.replace(/:/g, '').toLowerCase();
      assert.equal(r.json.sha256, fp);
      const got = await request(node, `/api/v1/exchange/certs/${fp}`, { headers: auth });
      assertConforms('GET', `/api/v1/exchange/certs/${fp}`, got);
      const list = await request(node, `/api/v1/exchange/certs?subsystem=${SUB}`, { headers: auth });
      assertConforms('GET', `/api/v1/exchange/certs?subsystem=${SUB}`, list);
      assert.equal(list.json.items.length, 1);

      // Registering the same certificate again, as one issued elsewhere.
      assertProblem(await post(node, '/api/v1/exchange/certs', { subsystem: SUB, usage: 'sign', certificate: r.json.certificate }),
        { status: 409, code: 'exchange.exists', field: 'certificate' });
      // A self-signed certificate chains to nothing we trust.
      const self = openssl(['req', '-x509', '-new', '-key', key, '-subj', '/CN=self', '-days', '2', '-out', path.join(dir, 'self.crt')]);
      assert.equal(self.status, 0, self.out);
      const untrusted = await post(node, '/api/v1/exchange/certs', { subsystem: SUB, usage: 'sign', certificate: readFileSync(path.join(dir, 'self.crt'), 'utf8') });
      assertProblem(untrusted, { status: 400, code: 'pki.cert_untrusted', field: 'certificate' });
      assertConforms('POST', '/api/v1/exchange/certs', untrusted);
      assertProblem(await post(node, '/api/v1/exchange/certs', { subsystem: SUB, usage: 'sign', csr: 'junk' }),
        { status: 400, code: 'pki.csr_invalid', field: 'csr' });
      assertProblem(await post(node, '/api/v1/exchange/certs', { subsystem: SUB, usage: 'sign' }),
        { status: 400, code: 'validation.invalid_field' });
      assertProblem(await post(node, '/api/v1/exchange/certs', { subsystem: SUB, usage: 'both', csr: 'x' }),
        { status: 400, code: 'validation.invalid_field', field: 'usage' });
      assertProblem(await post(node, '/api/v1/exchange/certs', { subsystem: `${M}/NONE`, usage: 'sign', csr: readFileSync(csr, 'utf8') }),
        { status: 404, code: 'exchange.unknown_subsystem', field: 'subsystem' });
      assertProblem(await request(node, `/api/v1/exchange/certs/${'0'.repeat(64)}`, { headers: auth }),
        { status: 404, code: 'exchange.unknown_cert' });
    });

    test('every change is audited', () => {
      const actions = dbExec(node, "SELECT action FROM audit_log WHERE action LIKE 'exchange.%' ORDER BY seq").split('\n');
      for (const a of ['exchange.member.add', 'exchange.subsystem.add', 'exchange.service.add', 'exchange.access.add',
        'exchange.access.change', 'exchange.access.remove', 'exchange.event_type.add', 'exchange.service.remove',
        'exchange.cert.add']) {
        assert.ok(actions.includes(a), `${a} in ${actions.join(',')}`);
      }
    });

    let jws1;
    test('the global configuration: signed, versioned, cached with an ETag', async () => {
      const status = await request(node, '/api/v1/exchange/status', { headers: auth });
      assertConforms('GET', '/api/v1/exchange/status', status);
      assert.equal(status.json.role, 'central');
      const r = await request(node, '/exchange/v1/globalconf');
      assert.equal(r.status, 200, r.text);
      assertConforms('GET', '/exchange/v1/globalconf', r);
      assert.equal(r.headers.get('content-type'), 'application/jose');
      jws1 = r.text;
      const conf = verifyJws(r.text, readFileSync(path.join(node.dataDir, 'exchange/central.crt'), 'utf8'));
      assert.equal(conf.instance, 'MO');
      assert.equal(conf.version, status.json.version);
      assert.equal(Date.parse(conf.expires_at) - Date.parse(conf.generated_at), 120000);
      assert.deepEqual(conf.members.map((m) => m.id), [M, CLIENT_M]);
      const reg = conf.subsystems.find((s) => s.id === SUB);
      assert.equal(reg.gateway, 'https://127.0.0.1:5501');
      assert.deepEqual(reg.certs.map((c) => c.sha256), [signCert.sha256]);
      assert.equal(reg.certs[0].usage, 'sign');
      assert.deepEqual(conf.services.map((s) => s.id), [SVC]);
      assert.equal(conf.services[0].log, 'digest');
      assert.deepEqual(conf.access, [{ client: CLIENT, service: SVC, methods: 'GET,POST', paths: '/persons/*,/count' }]);
      assert.deepEqual(conf.event_types, [{ id: `${SUB}/person-changed` }]);
      const etag = r.headers.get('etag');
      const nm = await request(node, '/exchange/v1/globalconf', { headers: { 'If-None-Match': etag } });
      assert.equal(nm.status, 304);
      // A change makes a new version.
      assert.equal((await post(node, '/api/v1/exchange/members', { id: 'MO/GOV/IAM', name: 'IAM' })).status, 201);
      const r2 = await request(node, '/exchange/v1/globalconf', { headers: { 'If-None-Match': etag } });
      assert.equal(r2.status, 200);
      const conf2 = verifyJws(r2.text, readFileSync(path.join(node.dataDir, 'exchange/central.crt'), 'utf8'));
      assert.equal(conf2.version, conf.version + 1);
      // The CLI shows the same.
      const show = cli(node, 'conf', 'show');
      assert.equal(show.status, 0, show.stderr);
      assert.match(show.stdout, new RegExp(`version\\t${conf2.version}`));
    });

    test('a revoked certificate leaves the configuration', async () => {
      const rv = await post(node, `/api/v1/certificates/${signCert.serial}/revoke`, { reason: 'keyCompromise' });
      assert.equal(rv.status, 200, rv.text);
      const r = await request(node, '/exchange/v1/globalconf');
      const conf = verifyJws(r.text, readFileSync(path.join(node.dataDir, 'exchange/central.crt'), 'utf8'));
      assert.deepEqual(conf.subsystems.find((s) => s.id === SUB).certs, []);
      assert.ok(jws1);
    });

    test('the CLI manages the same registry', () => {
      let r = cli(node, 'member', 'add', 'MO/GOV/DSEC', 'DSEC');
      assert.equal(r.status, 0, r.stderr);
      r = cli(node, 'member', 'add', 'MO/GOV/DSEC', 'DSEC');
      assert.equal(r.status, 1);
      assert.match(r.stderr, /exchange\.exists/);
      r = cli(node, 'subsystem', 'add', 'MO/GOV/DSEC/WEB', '--gateway', 'https://127.0.0.1:5509');
      assert.equal(r.status, 0, r.stderr);
      writeFileSync(path.join(dir, 'oa.json'), JSON.stringify({ openapi: '3.1.0', paths: {} }));
      r = cli(node, 'service', 'add', 'MO/GOV/DSEC/WEB/stats', '--openapi', path.join(dir, 'oa.json'), '--log', 'digest', '--max-body', '2048', '--title', 'Stats');
      assert.equal(r.status, 0, r.stderr);
      r = cli(node, 'access', 'grant', CLIENT, 'MO/GOV/DSEC/WEB/stats', '--methods', 'GET', '--paths', '/v1/*');
      assert.equal(r.status, 0, r.stderr);
      r = cli(node, 'access', 'list', CLIENT);
      assert.match(r.stdout, /MO\/GOV\/DSEC\/WEB\/stats\tGET\t\/v1\/\*/);
      r = cli(node, 'access', 'grant', CLIENT, 'MO/GOV/DSEC/WEB/stats', '--methods', 'FETCH');
      assert.equal(r.status, 1);
      assert.match(r.stderr, /methods/);
      r = cli(node, 'member', 'remove', 'MO/GOV/DSEC');
      assert.equal(r.status, 1);
      assert.match(r.stderr, /exchange\.in_use/);
      // keygen on the gateway side, issue on the central, install.
      r = cli(node, 'keygen', 'MO/GOV/DSEC/WEB');
      assert.equal(r.status, 0, r.stderr);
      writeFileSync(path.join(dir, 'web.csr'), r.stdout);
      assert.equal(statSync(path.join(node.dataDir, 'exchange/keys/MO+GOV+DSEC+WEB.key')).mode & 0o777, 0o600);
      r = cli(node, 'cert', 'issue', 'MO/GOV/DSEC/WEB', '--usage', 'sign', '--csr', path.join(dir, 'web.csr'));
      assert.equal(r.status, 0, r.stderr);
      writeFileSync(path.join(dir, 'web.crt'), r.stdout);
      r = cli(node, 'cert', 'install', 'MO/GOV/DSEC/WEB', path.join(dir, 'web.crt'));
      assert.equal(r.status, 0, r.stderr);
      assert.ok(existsSync(path.join(node.dataDir, 'exchange/keys/MO+GOV+DSEC+WEB.crt')));
      // A certificate for another key is refused.
      r = cli(node, 'cert', 'install', 'MO/GOV/DSEC/WEB', path.join(dir, 'reg.crt'));
      assert.equal(r.status, 1);
      assert.match(r.stderr, /does not match/);
      r = cli(node, 'cert', 'list', 'MO/GOV/DSEC/WEB');
      assert.match(r.stdout, /MO\/GOV\/DSEC\/WEB\tsign/);
    });
  });
}

// A central node and a gateway: the gateway downloads and verifies the
// configuration, keeps it while the central is down, until it expires.
describe('exchange global configuration on a gateway', () => {
  let central;
  let gateway;
  let impostor;
  let pinDir;
  let certPath; // the central's certificate, pinned by the gateway

  before(async () => {
    central = await startEgov({ backend: 'sqlite', config: adminConfig('role = central\n[exchange]\nconf_validity_s = 10\n') });
    const init = cli(central, 'central', 'init');
    assert.equal(init.status, 0, init.stderr);
    pinDir = mkdtempSync(path.join(os.tmpdir(), 'egov-exreg-pin-'));
    certPath = path.join(pinDir, 'central.crt');
    writeFileSync(certPath, readFileSync(path.join(central.dataDir, 'exchange/central.crt')));
    assert.equal((await post(central, '/api/v1/exchange/members', { id: M, name: 'DSAJ' })).status, 201);
  });
  after(async () => {
    for (const n of [gateway, central, impostor]) if (n) await stopClean(n);
    rmSync(pinDir, { recursive: true, force: true });
  });

  const gatewayConfig = (url, cert) => adminConfig(`role = gateway\n[exchange]\ncentral_url = ${url}\ncentral_cert = ${cert}\nconf_refresh_s = 1\n`);

  test('the gateway downloads, verifies and keeps the configuration', async () => {
    gateway = await startEgov({ backend: 'sqlite', config: gatewayConfig(central.url, certPath) });
    const kept = path.join(gateway.dataDir, 'exchange/globalconf.jws');
    await until('the kept configuration', () => existsSync(kept));
    verifyJws(readFileSync(kept, 'utf8'), readFileSync(certPath, 'utf8'));
    const show = cli(gateway, 'conf', 'show');
    assert.equal(show.status, 0, show.stderr);
    assert.match(show.stdout, /state\tvalid/);
    assert.match(show.stdout, /members\t1/);
    // A change on the central node reaches the gateway.
    assert.equal((await post(central, '/api/v1/exchange/members', { id: CLIENT_M, name: 'DSB' })).status, 201);
    await until('the new version', () => /members\t2/.test(cli(gateway, 'conf', 'show').stdout));
  });

  test('central down: the gateway restarts from its copy, until it expires', async () => {
    const lc = await request(gateway, '/listClients');
    assert.equal(lc.status, 200, lc.text);
    await stopClean(central);
    central = null;
    // A restarted gateway on the same data directory, the central gone.
    await gateway.stop({ keepData: true });
    const dataDir = gateway.dataDir;
    const conf = path.join(dataDir, 'test.conf');
    const port = gateway.port;
    const { spawn } = await import('node:child_process');
    const child = spawn(gateway.child.spawnargs[0], ['serve', '--data', dataDir, '--database', `sqlite:${dataDir}/egov.db`,
      '--config', conf, '--listen', `127.0.0.1:${port}`], { env: { ...process.env, EGOV_WEB_DIR: path.join(root, 'web') }, stdio: ['ignore', 'ignore', 'pipe'] });
    let errText = '';
    child.stderr.on('data', (d) => { errText += d; });
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const again = { url: `http://127.0.0.1:${port}` };
    try {
      const up = await until('the restarted gateway', async () => {
        try { return (await request(again, '/listClients')); } catch { return null; }
      });
      assert.equal(up.status, 200, up.text);
      const r = run(['exchange', 'conf', 'show', '--data', dataDir, '--config', conf]);
      const m = /expires_at\t(\S+)/.exec(r.stdout);
      assert.ok(m, r.stdout + r.stderr);
      // conf_validity_s = 10: then the kept copy is no longer used.
      await until('expiry', () => Date.now() > Date.parse(m[1]) + 200, 20000);
      const expired = await request(again, '/listClients');
      assertProblem(expired, { status: 503, code: 'exchange.conf_expired' });
      assert.match(run(['exchange', 'conf', 'show', '--data', dataDir, '--config', conf]).stdout, /state\texpired/);
    } finally {
      child.kill('SIGTERM');
      assert.deepEqual(await exited, { code: 0, signal: null }, errText);
      rmSync(dataDir, { recursive: true, force: true });
      gateway = null;
    }
  });

  test('a configuration signed by another central key is refused', async () => {
    // A second central node with its own key; the gateway pins the first's.
    impostor = await startEgov({ backend: 'sqlite', config: adminConfig('role = central\n') });
    assert.equal(cli(impostor, 'central', 'init').status, 0);
    const other = await startEgov({ backend: 'sqlite', config: adminConfig('role = central\n') });
    assert.equal(cli(other, 'central', 'init').status, 0);
    const pinned = path.join(other.dataDir, 'exchange/central.crt');
    const gw = await startEgov({ backend: 'sqlite', config: gatewayConfig(impostor.url, pinned) });
    try {
      await until('a refusal in the log', () => /exchange\.conf_signature/.test(gw.logs()));
      assert.ok(!existsSync(path.join(gw.dataDir, 'exchange/globalconf.jws')));
    } finally {
      await stopClean(gw);
      await stopClean(other);
    }
  });
});
