// Federation of two data exchange instances, as X-Road federates them: MO
// (a central node and two gateways, tests/lib/exchange.mjs) and HK (its
// own central node, CA and TSA, and one gateway). Each central node trusts
// the other's configuration signing certificate; each gateway then
// downloads the other instance's signed global configuration from the URL
// its own registry publishes and checks it against that certificate. A
// subsystem of MO calls a service of HK under an access right HK's
// registry grants: with it the call goes through, without it it is
// refused, and once MO withdraws its trust in HK it is refused before
// anything is sent. Both message logs verify.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backends } from '../lib/egov.mjs';
import {
  ADMIN_TOKEN, HK, IDS, PERSONS_OPENAPI, canonRequest, es256verify, peerRequest, request, sha256hex, signedHeaders,
  startFederation, waitForFederatedVersion, waitForInstance, waitForVersion,
} from '../lib/exchange.mjs';
import { assertProblem } from './lib/http.mjs';
import { assertConforms } from './lib/openapi.mjs';

const PERSONS = `${HK.REG}/persons`;
const auth = { Authorization: `Bearer ${ADMIN_TOKEN}` };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

for (const backend of backends()) {
  describe(`exchange federation of two instances (${backend})`, () => {
    let fx;

    before(async () => {
      fx = await startFederation({ backend, tag: 'fed' });
    });
    after(async () => {
      if (!fx) return;
      const exits = await fx.stop();
      for (const [name, e] of Object.entries(exits)) assert.deepEqual(e, { code: 0, signal: null }, `${name} exit`);
    });

    const logRow = (node, id, side) => {
      const out = node.sql(`SELECT client, service, status, request_sig, response_sig, request_signer_cert, response_signer_cert`
        + ` FROM exchange_log WHERE message_id = '${id}' AND side = '${side}'`);
      if (!out) return null;
      const [client, service, status, requestSig, responseSig, requestCert, responseCert] = out.split('|');
      return { client, service, status, requestSig, responseSig, requestCert, responseCert };
    };
    const audited = (node, action) => node.sql(`SELECT object FROM audit_log WHERE action = '${action}' ORDER BY seq`).split('\n').filter(Boolean);

    test('each central node publishes the instance it trusts, and the trust is audited', async () => {
      const { mo, hk } = fx;
      const list = mo.central.cliOk('exchange', 'trust', 'list');
      assert.match(list, new RegExp(`^HK\\t${hk.central.url.replace(/[.]/g, '\\.')}\\t[0-9a-f]{64}\\t`, 'm'));
      const r = await request(`${hk.central.url}/api/v1/exchange/trusts/MO`, { headers: auth });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.instance, 'MO');
      assert.equal(r.json.url, mo.central.url);
      assert.equal(r.json.cert_sha256, sha256hex(new crypto.X509Certificate(readFileSync(path.join(mo.central.dataDir, 'exchange/central.crt'))).raw));
      assert.match(r.json.certificate, /BEGIN CERTIFICATE/);
      assertConforms('GET', '/api/v1/exchange/trusts/MO', r);
      const l = await request(`${hk.central.url}/api/v1/exchange/trusts`, { headers: auth });
      assert.deepEqual(l.json.items.map((t) => t.instance), ['MO']);
      assertConforms('GET', '/api/v1/exchange/trusts', l);
      assert.deepEqual(audited(mo.central, 'exchange.trust.add'), ['exchange:trust:HK']);
      assert.deepEqual(audited(hk.central, 'exchange.trust.add'), ['exchange:trust:MO']);
      // The published document names it; a gateway shows what it holds.
      const doc = await request(`${mo.central.url}/exchange/v1/globalconf`);
      const payload = JSON.parse(Buffer.from(doc.text.split('.')[1], 'base64url'));
      assert.deepEqual(payload.federation.map((t) => [t.instance, t.url]), [['HK', hk.central.url]]);
      const show = mo.dsb.cliOk('exchange', 'conf', 'show');
      assert.match(show, /^trusted_instances\t1$/m);
      assert.match(show, /^federated\tHK\t\d+\t\S+\tvalid$/m);
    });

    test('the registry refuses what federation does not allow', async () => {
      const { mo, hk } = fx;
      const post = (body) => request(`${mo.central.url}/api/v1/exchange/trusts`, {
        method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
      });
      const cert = readFileSync(path.join(hk.central.dataDir, 'exchange/central.crt'), 'utf8');
      assertProblem(await post({ instance: 'MO', url: hk.central.url, certificate: cert }), { status: 400, code: 'validation.invalid_field', field: 'instance' });
      assertProblem(await post({ instance: 'H K', url: hk.central.url, certificate: cert }), { status: 400, code: 'validation.invalid_field', field: 'instance' });
      assertProblem(await post({ instance: 'SG', url: 'ftp://x', certificate: cert }), { status: 400, code: 'validation.invalid_field', field: 'url' });
      assertProblem(await post({ instance: 'SG', url: hk.central.url, certificate: 'not a certificate' }), { status: 400, code: 'pki.cert_invalid', field: 'certificate' });
      // An access right for a client of an instance nobody trusts.
      const g = await request(`${mo.central.url}/api/v1/exchange/access`, {
        method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ client: 'SG/GOV/X/APP', service: `${IDS.REG}/persons` }),
      });
      assertProblem(g, { status: 400, code: 'validation.invalid_field', field: 'client' });
      // Nor may a registry register another instance's members.
      const m = mo.central.cli('exchange', 'member', 'add', 'HK/GOV/X', 'x');
      assert.equal(m.status, 1, m.stderr);
      assertProblem(await request(`${mo.central.url}/api/v1/exchange/trusts/SG`, { headers: auth }), { status: 404, code: 'exchange.unknown_instance' });
      assertProblem(await request(`${mo.central.url}/api/v1/exchange/trusts/S%22G`, { headers: auth }), { status: 400, code: 'exchange.id_invalid' });
    });

    test('listClients with instanceId lists the members of the other instance', async () => {
      const { mo } = fx;
      let r = await request(`${mo.dsb.url}/r1/listClients?instanceId=HK`);
      assert.equal(r.status, 200, r.text);
      assertConforms('GET', '/r1/listClients?instanceId=HK', r);
      const ids = r.json.member.map((m) => [m.id.objectType, m.id.instanceId, m.id.memberCode, m.id.applicationCode ?? ''].join(':')).sort();
      assert.deepEqual(ids, ['APPLICATION:HK:IMMD:REG', 'MEMBER:HK:IMMD:']);
      r = await request(`${mo.dsb.url}/listClients?instanceId=HK`);
      assert.equal(r.json.member.length, 2);
      // Without instanceId: this instance's own.
      r = await request(`${mo.dsb.url}/r1/listClients`);
      assert.ok(r.json.member.every((m) => m.id.instanceId === 'MO'), JSON.stringify(r.json));
      // HK's gateway sees MO's members the same way.
      r = await request(`${fx.hk.gw.url}/r1/listClients?instanceId=MO`);
      assert.ok(r.json.member.some((m) => m.id.applicationCode === 'APP'));
      // The metaservices reach the other instance's provider too.
      r = await fx.call(`${HK.REG}/allowedMethods`);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.member.map((s) => s.serviceCode), ['persons']);
      assert.deepEqual(r.json.member[0].endpointList.member, [{ method: 'GET', path: '*' }]);
      r = await fx.call(`${HK.REG}/listMethods`);
      assert.deepEqual(r.json.member.map((s) => s.serviceCode).sort(), ['nogrant', 'persons']);
      r = await fx.call(`${HK.REG}/getOpenAPI?serviceCode=persons`);
      assert.deepEqual(r.json, PERSONS_OPENAPI);
    });

    test('a subsystem of MO calls a service of HK under the right HK granted; both sides sign and log it', async () => {
      const { mo, hk } = fx;
      const r = await fx.call(`${PERSONS}/persons/7?x=1`, { headers: { 'X-Egov-Data-Subject': 'resident-7', 'X-Egov-Purpose': 'cross-border check' } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.url, '/persons/7?x=1');
      assert.equal(r.json.headers['x-road-client'], IDS.APP, 'HK\'s back-end learns the MO caller');
      const id = r.headers.get('x-road-id');
      const c = logRow(mo.dsb, id, 'consumer');
      const p = logRow(hk.gw, id, 'provider');
      assert.ok(c && p, 'a record on each side');
      for (const row of [c, p]) {
        assert.equal(row.client, IDS.APP);
        assert.equal(row.service, PERSONS);
        assert.equal(row.status, '200');
      }
      assert.equal(c.requestSig, p.requestSig);
      assert.equal(c.responseSig, p.responseSig);
      const signedAt = mo.dsb.sql(`SELECT request_signed_at FROM exchange_log WHERE message_id = '${id}'`);
      assert.ok(es256verify(mo.dsb.signCert, canonRequest({
        messageId: id, client: IDS.APP, service: PERSONS, method: 'GET', path: '/persons/7?x=1',
        dataSubject: 'resident-7', purpose: 'cross-border check', signedAt,
      }), c.requestSig), 'signed by MO\'s subsystem');
      assert.equal(c.responseCert, sha256hex(new crypto.X509Certificate(hk.gw.signCert).raw), 'answered by HK\'s subsystem key');
    });

    test('without a right granted by HK the call is refused, at MO\'s gateway and at HK\'s', async () => {
      const { mo, hk } = fx;
      assertProblem(await fx.call(`${HK.REG}/nogrant/x`), { status: 403, code: 'exchange.access_denied' });
      assertProblem(await fx.call(`${PERSONS}/persons/7`, { method: 'POST', body: 'x', headers: { 'Content-Type': 'text/plain' } }),
        { status: 403, code: 'exchange.access_denied' });
      // Straight to HK's gateway, signed by MO's subsystem as MO's gateway
      // would: HK's registry decides, and HK's gateway signs its refusal.
      const h = signedHeaders({ messageId: crypto.randomUUID(), client: IDS.APP, service: `${HK.REG}/nogrant`, method: 'GET', path: '/x' },
        mo.dsb.signKey, mo.dsb.signCert);
      const r = await peerRequest(hk.gw, `/peer/v1/r1/${HK.REG}/nogrant/x`, { headers: h, key: mo.dsb.tlsKey, cert: mo.dsb.tlsCert });
      assertProblem(r, { status: 403, code: 'exchange.access_denied' });
      assert.ok(r.headers.get('x-egov-signature'), 'signed by HK\'s gateway');
      assert.ok(fx.backend.requests.every((q) => !q.url.startsWith('/x') || q.headers['x-road-client'] !== IDS.APP));
      // A grant by MO's own registry cannot reach HK's service at all.
      const g = mo.central.cli('exchange', 'access', 'grant', IDS.APP, `${HK.REG}/nogrant`);
      assert.equal(g.status, 1, g.stderr);
      // HK revokes its grant: refused once MO's gateway holds HK's new configuration.
      hk.central.cliOk('exchange', 'access', 'revoke', IDS.APP, PERSONS);
      await waitForFederatedVersion(mo.dsb, 'HK', hk.central);
      await waitForVersion(hk.gw, hk.central);
      assertProblem(await fx.call(`${PERSONS}/persons/7`), { status: 403, code: 'exchange.access_denied' });
      hk.central.cliOk('exchange', 'access', 'grant', IDS.APP, PERSONS, '--methods', 'GET');
      await waitForFederatedVersion(mo.dsb, 'HK', hk.central);
      await waitForVersion(hk.gw, hk.central);
      const again = await fx.call(`${PERSONS}/persons/8`);
      assert.equal(again.status, 200, again.text);
    });

    test('both message logs verify', async () => {
      await sleep(1500); // a seal over the latest records
      for (const g of [fx.mo.dsb, fx.hk.gw]) {
        const r = g.cli('exchange', 'log', 'verify');
        assert.equal(r.status, 0, `${g.name}: ${r.stdout}${r.stderr}`);
      }
    });

    test('once MO withdraws its trust in HK, calls to HK are refused before anything is sent', async () => {
      const { mo, hk } = fx;
      const seen = fx.backend.requests.length;
      const d = await request(`${mo.central.url}/api/v1/exchange/trusts/HK`, { method: 'DELETE', headers: auth });
      assert.equal(d.status, 204, d.text);
      assert.deepEqual(audited(mo.central, 'exchange.trust.remove'), ['exchange:trust:HK']);
      await waitForVersion(mo.dsb, mo.central);
      await waitForInstance(mo.dsb, 'HK', false);
      assertProblem(await fx.call(`${PERSONS}/persons/7`), { status: 404, code: 'exchange.unknown_instance' });
      assertProblem(await fx.call(`${HK.REG}/allowedMethods`), { status: 404, code: 'exchange.unknown_instance' });
      const lc = await request(`${mo.dsb.url}/r1/listClients?instanceId=HK`);
      assert.deepEqual(lc.json, { member: [] });
      assert.equal(fx.backend.requests.length, seen, 'nothing reached HK\'s back-end');
      // HK's side: withdrawing its trust in MO makes HK's gateway refuse
      // MO's signed requests, whatever HK's registry granted.
      const h = signedHeaders({ messageId: crypto.randomUUID(), client: IDS.APP, service: PERSONS, method: 'GET', path: '/persons/1' },
        mo.dsb.signKey, mo.dsb.signCert);
      const ok = await peerRequest(hk.gw, `/peer/v1/r1/${PERSONS}/persons/1`, { headers: h, key: mo.dsb.tlsKey, cert: mo.dsb.tlsCert });
      assert.equal(ok.status, 200, ok.text);
      hk.central.cliOk('exchange', 'trust', 'remove', 'MO');
      await waitForVersion(hk.gw, hk.central);
      await waitForInstance(hk.gw, 'MO', false);
      const h2 = signedHeaders({ messageId: crypto.randomUUID(), client: IDS.APP, service: PERSONS, method: 'GET', path: '/persons/1' },
        mo.dsb.signKey, mo.dsb.signCert);
      const r = await peerRequest(hk.gw, `/peer/v1/r1/${PERSONS}/persons/1`, { headers: h2, key: mo.dsb.tlsKey, cert: mo.dsb.tlsCert });
      assertProblem(r, { status: 401, code: 'exchange.signature_invalid' });
      // Its grants to MO's clients went with the trust.
      assert.equal(hk.central.cliOk('exchange', 'access', 'list').includes(IDS.APP), false);
      // Both logs still verify.
      for (const g of [mo.dsb, hk.gw]) {
        const v = g.cli('exchange', 'log', 'verify');
        assert.equal(v.status, 0, `${g.name}: ${v.stdout}${v.stderr}`);
      }
    });
  });
}
