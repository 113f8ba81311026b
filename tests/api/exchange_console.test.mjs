// What the staff console's registry page stands on, on every backend:
// GET /api/v1/exchange/console (who may read it, the published
// configuration before and after the central key exists, a certificate's
// standing good, then revoked through the platform CA), and the pages'
// gatekeeping: no session -> 303 to log in with a return path, no
// permission -> the translated 403 page, permission -> the page.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backends, run } from '../lib/egov.mjs';
import { LANGS, adminConfig, assertProblem, auth, catalogue, request, start, stopClean } from './lib/http.mjs';
import { assertConforms } from './lib/openapi.mjs';

const SUB = 'MO/GOV/DSAJ/REG';

async function login(node, email, password) {
  const r = await request(node, '/api/v1/identity/login', { method: 'POST', json: { email, password } });
  assert.equal(r.status, 200);
  return r.headers.get('set-cookie').split(';')[0];
}

for (const backend of backends()) {
  describe(`staff console (${backend})`, () => {
    let node;
    let dir;

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'egov-staff-'));
      node = await start(backend, 'staff', { config: adminConfig('role = central\n') });
    });
    after(async () => {
      await stopClean(node);
      rmSync(dir, { recursive: true, force: true });
    });

    test('the summary needs exchange.admin', async () => {
      assertProblem(await request(node, '/api/v1/exchange/console'), { status: 401, code: 'unauthorized' });
      const resident = await login(node, 'resident@demo.egov.mo', 'demo-resident-2026');
      const r = await request(node, '/api/v1/exchange/console', { headers: { Cookie: resident } });
      assertProblem(r, { status: 403, code: 'forbidden' });
      assertConforms('GET', '/api/v1/exchange/console', r);
    });

    test('configuration: unpublished without the central key, then its version and dates', async () => {
      let r = await request(node, '/api/v1/exchange/console', { headers: auth });
      assert.equal(r.status, 200);
      assertConforms('GET', '/api/v1/exchange/console', r);
      assert.equal(r.json.role, 'central');
      assert.deepEqual(r.json.conf, { published: false });
      const init = run(['exchange', 'central', 'init', '--data', node.dataDir, '--database', node.database,
        '--config', path.join(node.dataDir, 'test.conf')]);
      assert.equal(init.status, 0, init.stderr);
      const m = await request(node, '/api/v1/exchange/members', { method: 'POST', headers: auth, json: { id: 'MO/GOV/DSAJ', name: 'Legal Affairs Bureau' } });
      assert.equal(m.status, 201);
      r = await request(node, '/api/v1/exchange/console', { headers: auth });
      assertConforms('GET', '/api/v1/exchange/console', r);
      assert.equal(r.json.conf.published, true);
      assert.equal(r.json.conf.version, r.json.registry_version);
      const validity = Date.parse(r.json.conf.expires_at) - Date.parse(r.json.conf.generated_at);
      assert.ok(validity > 0, 'expires after it was signed');
      // The same dates as the signed document itself.
      const g = await request(node, '/exchange/v1/globalconf');
      const payload = JSON.parse(Buffer.from(g.text.split('.')[1], 'base64url').toString('utf8'));
      assert.equal(payload.expires_at, r.json.conf.expires_at);
      assert.equal(payload.version, r.json.conf.version);
    });

    test("a certificate's standing: good, then revoked", async () => {
      const s = await request(node, '/api/v1/exchange/subsystems', { method: 'POST', headers: auth, json: { id: SUB, gateway: 'https://127.0.0.1:5501' } });
      assert.equal(s.status, 201);
      const key = path.join(dir, 'k.pem');
      const csr = path.join(dir, 'r.csr');
      const o = spawnSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', key, '-subj', '/CN=REG', '-out', csr], { encoding: 'utf8' });
      assert.equal(o.status, 0, o.stderr);
      const c = await request(node, '/api/v1/exchange/certs', { method: 'POST', headers: auth, json: { subsystem: SUB, usage: 'sign', csr: readFileSync(csr, 'utf8') } });
      assert.equal(c.status, 201, c.text);
      let r = await request(node, '/api/v1/exchange/console', { headers: auth });
      assert.deepEqual(r.json.certs, [{ sha256: c.json.sha256, status: 'good' }]);
      const rv = await request(node, `/api/v1/certificates/${c.json.serial}/revoke`, { method: 'POST', headers: auth, json: { reason: 'keyCompromise' } });
      assert.equal(rv.status, 200, rv.text);
      r = await request(node, '/api/v1/exchange/console', { headers: auth });
      assertConforms('GET', '/api/v1/exchange/console', r);
      assert.deepEqual(r.json.certs, [{ sha256: c.json.sha256, status: 'revoked' }]);
    });

    test('pages: log in first, 403 page without the permission, the page with it', async () => {
      let r = await request(node, '/staff/exchange?lang=en');
      assert.equal(r.status, 303);
      assert.equal(r.headers.get('location'), '/login.html?lang=en&return=%2Fstaff%2Fexchange');
      assertConforms('GET', '/staff/exchange', r);
      r = await request(node, '/staff');
      assert.equal(r.status, 303);
      assert.equal(r.headers.get('location'), '/login.html?return=%2Fstaff');
      const resident = await login(node, 'resident@demo.egov.mo', 'demo-resident-2026');
      for (const lang of LANGS) {
        r = await request(node, `/staff/exchange?lang=${lang}`, { headers: { Cookie: resident } });
        assert.equal(r.status, 403);
        assert.match(r.headers.get('content-type'), /^text\/html/);
        assert.ok(r.text.includes(`<h1>${catalogue(lang)['staff.forbidden.heading']}</h1>`), lang);
      }
      const admin = await login(node, 'admin@demo.egov.mo', 'demo-admin-2026');
      r = await request(node, '/staff/exchange', { headers: { Cookie: admin, 'Accept-Language': 'pt' } });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('cache-control'), 'no-store');
      assert.ok(r.text.includes(catalogue('pt')['staff.exchange.heading']));
      assert.ok(r.text.includes('/js/staff-exchange.js'));
      r = await request(node, '/staff', { headers: { Cookie: admin } });
      assert.equal(r.status, 200);
      assert.ok(r.text.includes('href="/staff/exchange"'));
      // The refusals are in the audit log.
      const items = [];
      for (let after = 0; after !== null;) {
        const a = await request(node, `/api/v1/audit?after=${after}&limit=1000`, { headers: auth });
        assert.equal(a.status, 200);
        items.push(...a.json.items);
        after = a.json.next_after;
      }
      const refused = items.filter((x) => x.action === 'staff.page_forbidden');
      assert.equal(refused.length, LANGS.length);
      assert.ok(refused.every((x) => x.object === 'page:/staff/exchange' && /^account:/.test(x.actor)));
    });
  });
}
