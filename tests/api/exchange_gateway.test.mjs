// The data exchange end to end: a department system calls its gateway
// (MO/GOV/DSB/APP on dsb), which signs and sends over mutual TLS to the
// provider's gateway (dsaj), which verifies, forwards to the back-end,
// signs the answer; both log. Happy paths, the metaservices of the
// GovStack IM Directory Services API, the logs on both sides checked with
// an independent implementation of the signed texts, and /metrics.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { backends } from '../lib/egov.mjs';
import { canonRequest, canonResponse, es256verify, IDS, PERSONS_OPENAPI, request, sha256hex, startExchange } from '../lib/exchange.mjs';
import { assertProblem } from './lib/http.mjs';
import { assertConforms } from './lib/openapi.mjs';

const PERSONS = `${IDS.REG}/persons`;
const SMALL = `${IDS.REG}/small`;

for (const backend of backends()) {
  describe(`exchange gateway (${backend})`, () => {
    let ex;

    before(async () => {
      ex = await startExchange({ backend, tag: 'gw' });
    });
    after(async () => {
      if (!ex) return;
      const exits = await ex.stop();
      for (const [name, e] of Object.entries(exits)) assert.deepEqual(e, { code: 0, signal: null }, `${name} exit`);
    });

    // The log row of an exchange on a node, as an object.
    const logRow = (node, id, side) => {
      const cols = ['side', 'client', 'service', 'method', 'path', 'represented_party', 'data_subject', 'purpose',
        'status', 'request_content_type', 'request_signed_at', 'request_sig', 'request_signer_cert',
        'request_body_sha256', 'response_content_type', 'response_signed_at', 'response_sig',
        'response_signer_cert', 'response_body_sha256', 'CASE WHEN request_body IS NULL THEN 1 ELSE 0 END', 'CASE WHEN response_body IS NULL THEN 1 ELSE 0 END'];
      const out = node.sql(`SELECT ${cols.join(', ')} FROM exchange_log WHERE message_id = '${id}' AND side = '${side}'`);
      if (!out) return null;
      const v = out.split('|');
      return Object.fromEntries(cols.map((c, i) => [c.replace(/^CASE WHEN (\w+) IS NULL.*$/, '$1 IS NULL'), v[i]]));
    };

    test('a GET goes through both gateways to the back-end and back', async () => {
      const r = await ex.call(`${PERSONS}/persons/7?a=1&b=%20x`, {
        headers: { 'X-Road-Represented-Party': 'MO/GOV/DSB', 'X-Egov-Data-Subject': 'resident-42', 'X-Egov-Purpose': 'renewal of ID card' },
      });
      assert.equal(r.status, 200, r.text);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      const id = r.headers.get('x-road-id');
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a UUIDv7 message id');
      const seen = r.json;
      assert.equal(seen.method, 'GET');
      assert.equal(seen.url, '/persons/7?a=1&b=%20x', 'path and query forwarded byte for byte');
      assert.equal(seen.headers['x-road-client'], IDS.APP);
      assert.equal(seen.headers['x-road-id'], id);
      assert.equal(seen.headers['x-road-represented-party'], 'MO/GOV/DSB');
      assert.equal(seen.headers['x-egov-data-subject'], 'resident-42');
      assert.equal(seen.headers['x-egov-purpose'], 'renewal of ID card');
      assert.equal(seen.headers['x-egov-signature'], undefined, 'signatures stay between the gateways');
    });

    test('both gateways log the exchange, and the signatures verify independently', async () => {
      const r = await ex.call(`${PERSONS}/persons`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Egov-Data-Subject': 'resident-7', 'X-Egov-Purpose': 'audit' },
        body: JSON.stringify({ name: '陳大文' }),
      });
      assert.equal(r.status, 200, r.text);
      const id = r.headers.get('x-road-id');
      const c = logRow(ex.dsb, id, 'consumer');
      const p = logRow(ex.dsaj, id, 'provider');
      assert.ok(c && p, 'a record on each side');
      for (const row of [c, p]) {
        assert.equal(row.client, IDS.APP);
        assert.equal(row.service, PERSONS);
        assert.equal(row.method, 'POST');
        assert.equal(row.path, '/persons');
        assert.equal(row.data_subject, 'resident-7');
        assert.equal(row.purpose, 'audit');
        assert.equal(row.status, '200');
        assert.equal(row['request_body IS NULL'], '0', 'log mode full keeps the body');
      }
      assert.equal(c.request_sig, p.request_sig);
      assert.equal(c.response_sig, p.response_sig);
      const body = Buffer.from(JSON.stringify({ name: '陳大文' }));
      assert.equal(c.request_body_sha256, sha256hex(body));
      assert.ok(es256verify(ex.dsb.signCert, canonRequest({
        messageId: id, client: IDS.APP, service: PERSONS, method: 'POST', path: '/persons', contentType: 'application/json',
        dataSubject: 'resident-7', purpose: 'audit', signedAt: c.request_signed_at, body,
      }), c.request_sig), 'request signature over the documented canonical text');
      assert.ok(es256verify(ex.dsaj.signCert, canonResponse({
        messageId: id, service: PERSONS, status: 200, contentType: c.response_content_type,
        requestSig: c.request_sig, signedAt: c.response_signed_at, body: r.body,
      }), c.response_sig), 'response signature over the documented canonical text');
    });

    test('any method, any content type, the caller\'s message id, and large bodies', async () => {
      for (const method of ['PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
        const r = await ex.call(`${PERSONS}/persons/9`, { method, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: method === 'DELETE' || method === 'OPTIONS' ? undefined : 'hello' });
        assert.equal(r.status, 200, `${method}: ${r.text}`);
        assert.equal(r.json.method, method);
      }
      const bin = Buffer.alloc(600 * 1024, 7);
      const r = await ex.call(`${PERSONS}/upload`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream', 'X-Road-Id': 'dsb-app-0001' }, body: bin });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-road-id'), 'dsb-app-0001');
      assert.equal(r.json.length, bin.length);
      const big = await ex.call(`${PERSONS}/large/700000`);
      assert.equal(big.status, 200);
      assert.equal(big.body.length, 700000);
      const head = await request(`${ex.dsb.url}/r1/${PERSONS}/persons/1`, { method: 'HEAD', headers: { 'X-Road-Client': IDS.APP } });
      assert.equal(head.status, 200);
    });

    test('Information-Mediator-Client is accepted like X-Road-Client', async () => {
      const r = await ex.call(`${SMALL}/echo`, { client: null, headers: { 'Information-Mediator-Client': IDS.APP } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.headers['x-road-client'], IDS.APP);
      assertConforms('GET', `/r1/${SMALL}/echo`, r);
    });

    test('the back-end\'s status and body come back unchanged, and digest-mode services log no bodies', async () => {
      const r = await ex.call(`${SMALL}/status/404`);
      assert.equal(r.status, 404);
      assert.deepEqual(r.json, { status: 404 });
      const row = logRow(ex.dsaj, r.headers.get('x-road-id'), 'provider');
      assert.equal(row.status, '404');
      assert.equal(row['request_body IS NULL'], '1');
      assert.equal(row['response_body IS NULL'], '1');
      const e = await ex.call(`${SMALL}/empty`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x' });
      assert.equal(e.status, 204);
      assert.equal(e.text, '');
    });

    test('metaservices: listClients, listMethods, allowedMethods, getOpenAPI', async () => {
      let r = await request(`${ex.dsb.url}/r1/listClients`);
      assert.equal(r.status, 200);
      assertConforms('GET', '/r1/listClients', r);
      const ids = r.json.member.map((m) => [m.id.objectType, m.id.memberCode, m.id.applicationCode ?? ''].join(':'));
      assert.ok(ids.includes('MEMBER:DSAJ:') && ids.includes('MEMBER:DSB:') && ids.includes('APPLICATION:DSAJ:REG') && ids.includes('APPLICATION:DSB:APP'), ids.join(' '));
      r = await request(`${ex.dsb.url}/listClients?instanceId=XX`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { member: [] });

      r = await ex.call(`${IDS.REG}/listMethods`);
      assert.equal(r.status, 200, r.text);
      assertConforms('GET', `/r1/${IDS.REG}/listMethods`, r);
      const persons = r.json.member.find((s) => s.serviceCode === 'persons');
      assert.equal(persons.serviceType, 'OPENAPI');
      assert.deepEqual(persons.endpointList.member.sort((a, b) => a.path.localeCompare(b.path)),
        [{ method: 'POST', path: '/persons' }, { method: 'GET', path: '/persons/{id}' }]);
      assert.ok(r.json.member.some((s) => s.serviceCode === 'secret'), 'listMethods lists every service');

      r = await ex.call(`${IDS.REG}/allowedMethods`);
      assert.equal(r.status, 200);
      assertConforms('GET', `/r1/${IDS.REG}/allowedMethods`, r);
      const codes = r.json.member.map((s) => s.serviceCode).sort();
      assert.deepEqual(codes, ['down', 'nobackend', 'persons', 'restricted', 'small']);
      const restricted = r.json.member.find((s) => s.serviceCode === 'restricted');
      assert.deepEqual(restricted.endpointList.member, [{ method: 'GET', path: '/allowed/*' }]);

      r = await ex.call(`${IDS.REG}/getOpenAPI?serviceCode=persons`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, PERSONS_OPENAPI);
      assertConforms('GET', `/r1/${IDS.REG}/getOpenAPI?serviceCode=persons`, r);
      assertProblem(await ex.call(`${IDS.REG}/getOpenAPI`), { status: 400, code: 'exchange.service_code_missing', field: 'serviceCode' });
      assertProblem(await ex.call(`${IDS.REG}/getOpenAPI?serviceCode=nope`), { status: 404, code: 'exchange.unknown_service' });
      assertProblem(await ex.call(`${IDS.REG}/getOpenAPI?serviceCode=small`), { status: 404, code: 'exchange.unknown_service' });
      assertProblem(await ex.call('MO/GOV/DSAJ/NOPE/listMethods'), { status: 404, code: 'exchange.unknown_subsystem' });
      assertProblem(await ex.call(`${IDS.REG}/listMethods`, { client: null }), { status: 400, code: 'exchange.client_invalid', field: 'X-Road-Client' });
    });

    test('/metrics counts exchanges by client, service and side', async () => {
      const r1 = await ex.call(`${PERSONS}/persons/1`);
      assert.equal(r1.status, 200);
      const cm = await (await fetch(`${ex.dsb.url}/metrics`)).text();
      const pm = await (await fetch(`${ex.dsaj.url}/metrics`)).text();
      const series = (text, side) => new RegExp(`egov_exchange_calls_total\\{client="${IDS.APP}",service="${PERSONS}",side="${side}",status="200"\\} (\\d+)`).exec(text);
      assert.ok(Number(series(cm, 'consumer')?.[1]) >= 1, cm.split('\n').filter((l) => l.includes('exchange')).join('\n'));
      assert.ok(Number(series(pm, 'provider')?.[1]) >= 1);
      assert.match(cm, /egov_exchange_latency_seconds_bucket\{client="MO\/GOV\/DSB\/APP",service="MO\/GOV\/DSAJ\/REG\/persons",side="consumer",le="\+Inf"\} \d+/);
      assert.match(cm, /egov_exchange_bytes_total\{client="MO\/GOV\/DSB\/APP",service="MO\/GOV\/DSAJ\/REG\/persons",side="consumer",direction="response"\} [1-9]\d*/);
      assert.match(cm, /egov_exchange_errors_total\{code="exchange.access_denied"\} \d+/);
    });

    test('the message logs of both gateways verify offline', async () => {
      for (const g of [ex.dsb, ex.dsaj]) {
        const r = g.cli('exchange', 'log', 'verify');
        assert.equal(r.status, 0, `${g.name}: ${r.stdout}${r.stderr}`);
      }
    });
  });
}
