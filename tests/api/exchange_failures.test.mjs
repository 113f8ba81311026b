// The data exchange when something is wrong: every refusal of the table in
// docs/exchange.md ("Calling a service"), requests forged straight to the
// provider's peer listener (with the consumer gateway's real TLS key, and
// signatures made here from the documented canonical text), a provider
// that answers unsigned, a gateway killed mid-load, and what happens when
// the central node (and with it the TSA) goes away.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';
import { backends } from '../lib/egov.mjs';
import { ADMIN_TOKEN, IDS, Node, peerRequest, request, signedHeaders, startExchange, waitForConf } from '../lib/exchange.mjs';
import { assertProblem } from './lib/http.mjs';

const PERSONS = `${IDS.REG}/persons`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

for (const backend of backends()) {
  describe(`exchange failures (${backend})`, () => {
    let ex;

    before(async () => {
      ex = await startExchange({ backend, tag: 'fail', confValidity: 25, gatewayConf: 'timestamp_grace_s = 4\n' });
    });
    after(async () => {
      if (ex) await ex.stop();
    });

    // A request to dsaj's peer listener as dsb's gateway would send it.
    const forged = (p, f = {}, opts = {}) => {
      const body = f.body ? Buffer.from(f.body) : undefined;
      const headers = signedHeaders({
        messageId: f.messageId ?? crypto.randomUUID(), client: IDS.APP, service: f.service ?? PERSONS,
        method: f.method ?? 'GET', path: p, body, contentType: f.contentType, signedAt: f.signedAt,
      }, opts.signKey ?? ex.dsb.signKey, opts.signCert ?? ex.dsb.signCert);
      Object.assign(headers, opts.headers ?? {});
      for (const k of Object.keys(headers)) if (headers[k] === undefined) delete headers[k];
      return peerRequest(ex.dsaj, `/peer/v1/r1/${f.service ?? PERSONS}${p}`, {
        method: f.method ?? 'GET', headers, body, key: opts.tlsKey ?? ex.dsb.tlsKey, cert: opts.tlsCert ?? ex.dsb.tlsCert,
      });
    };

    const audited = async (action) => {
      for (let i = 0; i < 50; i++) {
        const r = await request(`${ex.dsaj.url}/api/v1/audit?limit=100`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
        const items = r.json?.items ?? r.json?.records ?? [];
        if (items.some((it) => it.action === action)) return true;
        await sleep(100);
      }
      return false;
    };

    test('the caller: missing, malformed, or not served by this gateway', async () => {
      assertProblem(await ex.call(`${PERSONS}/persons/1`, { client: null }), { status: 400, code: 'exchange.client_invalid', field: 'X-Road-Client' });
      assertProblem(await ex.call(`${PERSONS}/persons/1`, { client: 'MO/GOV/DSB' }), { status: 400, code: 'exchange.client_invalid', field: 'X-Road-Client' });
      assertProblem(await ex.call(`${PERSONS}/persons/1`, { client: IDS.OTHER }), { status: 403, code: 'exchange.client_not_local' });
      assertProblem(await ex.call(`${PERSONS}/persons/1`, { client: IDS.REG }), { status: 403, code: 'exchange.client_not_local' });
      assertProblem(await ex.call(`${PERSONS}/persons/1`, { headers: { 'X-Road-Id': 'bad id with spaces' } }), { status: 400, code: 'exchange.header_invalid', field: 'X-Road-Id' });
      assertProblem(await ex.call(`${PERSONS}/persons/1`, { headers: { 'X-Egov-Purpose': 'x'.repeat(600) } }), { status: 400, code: 'exchange.header_invalid', field: 'X-Egov-Purpose' });
    });

    test('unknown member, subsystem and service are 404 with their own codes', async () => {
      assertProblem(await ex.call('MO/GOV/NOPE/REG/persons/x'), { status: 404, code: 'exchange.unknown_member' });
      assertProblem(await ex.call('MO/GOV/DSAJ/NOPE/persons/x'), { status: 404, code: 'exchange.unknown_subsystem' });
      assertProblem(await ex.call(`${IDS.REG}/nope/x`), { status: 404, code: 'exchange.unknown_service' });
      assertProblem(await ex.call(`${IDS.REG}`), { status: 404, code: 'exchange.unknown_service' });
    });

    test('no access right: 403 at the consumer, and at the provider signed and audited', async () => {
      assertProblem(await ex.call(`${IDS.REG}/secret/x`), { status: 403, code: 'exchange.access_denied' });
      assertProblem(await ex.call(`${IDS.REG}/restricted/denied/1`), { status: 403, code: 'exchange.access_denied' });
      assertProblem(await ex.call(`${IDS.REG}/restricted/allowed/1`, { method: 'POST', body: 'x', headers: { 'Content-Type': 'text/plain' } }), { status: 403, code: 'exchange.access_denied' });
      const ok = await ex.call(`${IDS.REG}/restricted/allowed/1`);
      assert.equal(ok.status, 200, ok.text);
      const r = await forged('/x', { service: `${IDS.REG}/secret` });
      assertProblem(r, { status: 403, code: 'exchange.access_denied' });
      assert.ok(r.headers.get('x-egov-signature'), 'the provider signs its refusal');
      assert.ok(await audited('exchange.access_denied'), 'audited on the provider');
    });

    test('bad or missing signatures, unknown certificates, old messages: 401, audited', async () => {
      const ok = await forged('/persons/1');
      assert.equal(ok.status, 200, ok.text);
      let r = await forged('/persons/1', {}, { headers: { 'X-Egov-Signature': 'A'.repeat(86) } });
      assertProblem(r, { status: 401, code: 'exchange.signature_invalid' });
      r = await forged('/persons/1', {}, { headers: { 'X-Egov-Signature': undefined } });
      assertProblem(r, { status: 401, code: 'exchange.signature_invalid' });
      // Signed for another path than the one sent.
      const h = signedHeaders({ messageId: crypto.randomUUID(), client: IDS.APP, service: PERSONS, method: 'GET', path: '/persons/1' }, ex.dsb.signKey, ex.dsb.signCert);
      r = await peerRequest(ex.dsaj, `/peer/v1/r1/${PERSONS}/persons/2`, { headers: h, key: ex.dsb.tlsKey, cert: ex.dsb.tlsCert });
      assertProblem(r, { status: 401, code: 'exchange.signature_invalid' });
      // A key whose certificate is not in the configuration.
      const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
      r = await forged('/persons/1', {}, { signKey: privateKey.export({ type: 'pkcs8', format: 'pem' }), signCert: ex.dsaj.signCert });
      assertProblem(r, { status: 401, code: 'exchange.signature_invalid' });
      // A TLS client certificate registered for another subsystem.
      r = await forged('/persons/1', {}, { tlsKey: ex.fakeTlsKey, tlsCert: ex.fakeTlsCert });
      assertProblem(r, { status: 401, code: 'exchange.signature_invalid' });
      // Signed too long ago.
      r = await forged('/persons/1', { signedAt: new Date(Date.now() - 3600e3).toISOString() });
      assertProblem(r, { status: 401, code: 'exchange.signature_invalid' });
      assert.ok(await audited('exchange.signature_invalid'));
    });

    test('a replayed message id is refused (409, audited) and never reaches the back-end twice', async () => {
      const id = `replay-${crypto.randomUUID()}`;
      const first = await forged('/persons/1', { messageId: id });
      assert.equal(first.status, 200);
      const again = await forged('/persons/1', { messageId: id });
      assertProblem(again, { status: 409, code: 'exchange.replay' });
      assert.equal(ex.backend.requests.filter((q) => q.headers['x-road-id'] === id).length, 1);
      assert.ok(await audited('exchange.replay'));
      // Through the consumer gateway with the caller's own id, twice.
      const mine = `mine-${crypto.randomUUID()}`;
      assert.equal((await ex.call(`${PERSONS}/persons/1`, { headers: { 'X-Road-Id': mine } })).status, 200);
      assertProblem(await ex.call(`${PERSONS}/persons/1`, { headers: { 'X-Road-Id': mine } }), { status: 409, code: 'exchange.replay' });
    });

    test('over the service\'s max_body: 413 at either gateway', async () => {
      const big = 'x'.repeat(2000);
      assertProblem(await ex.call(`${IDS.REG}/small/x`, { method: 'POST', body: big, headers: { 'Content-Type': 'text/plain' } }), { status: 413, code: 'exchange.payload_too_large' });
      const r = await forged('/x', { service: `${IDS.REG}/small`, method: 'POST', body: big, contentType: 'text/plain' });
      assertProblem(r, { status: 413, code: 'exchange.payload_too_large' });
      assertProblem(await ex.call(`${IDS.REG}/small/large/5000`), { status: 502, code: 'exchange.response_too_large' });
    });

    test('back-end down, missing, failing or slow; provider gateway unreachable', async () => {
      assertProblem(await ex.call(`${IDS.REG}/down/x`), { status: 502, code: 'exchange.backend_unavailable' });
      assertProblem(await ex.call(`${IDS.REG}/nobackend/x`), { status: 502, code: 'exchange.backend_unavailable' });
      const failing = await ex.call(`${PERSONS}/status/500`);
      assert.equal(failing.status, 500, 'a back-end error is the back-end\'s answer');
      const t0 = Date.now();
      assertProblem(await ex.call(`${PERSONS}/slow/4000`), { status: 504, code: 'exchange.backend_timeout' });
      assert.ok(Date.now() - t0 < 3500, 'answered after the service timeout (1500 ms), not the back-end');
      // While slow calls wait, others are served: waiting holds no worker.
      // (40 calls is more than the gateways have HTTP workers.) Once the
      // slow calls sit at the back-end (their connections set up, so no
      // CPU is spent on them), a quick call is answered while they wait.
      const seenBefore = ex.backend.requests.length;
      let slowDone = 0;
      const slow = Array.from({ length: 40 }, () => ex.call(`${PERSONS}/slow/1000`).then((s) => {
        slowDone++;
        return s;
      }));
      const deadline = Date.now() + 10000;
      while (ex.backend.requests.slice(seenBefore).filter((q) => q.url.startsWith('/slow/')).length < 20 &&
             slowDone === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      const waiting = 40 - slowDone;
      const quick = await ex.call(`${PERSONS}/persons/1`);
      const stillWaiting = 40 - slowDone;
      assert.equal(quick.status, 200);
      for (const s of await Promise.all(slow)) assert.equal(s.status, 200);
      assert.ok(waiting >= 20 && stillWaiting > 0,
        `a quick call is not stuck behind slow ones (${waiting} waiting when it started, ${stillWaiting} when it ended)`);
      assertProblem(await ex.call(`${IDS.DOWN}/svc/x`), { status: 502, code: 'exchange.provider_unreachable' });
    });

    test('a provider whose answer is not signed by its registered key: 502 response_invalid', async () => {
      const srv = https.createServer({ key: ex.fakeTlsKey, cert: ex.fakeTlsCert }, (req, res) => {
        req.resume();
        req.on('end', () => res.writeHead(200, {
          'Content-Type': 'application/json', 'X-Road-Id': req.headers['x-road-id'],
          'X-Egov-Signed-At': new Date().toISOString(), 'X-Egov-Signer-Cert': '0'.repeat(64), 'X-Egov-Signature': 'A'.repeat(86),
        }).end('{"forged":true}'));
      });
      await new Promise((r) => srv.listen(ex.fakePort, '127.0.0.1', r));
      try {
        assertProblem(await ex.call(`${IDS.FAKE}/svc/x`), { status: 502, code: 'exchange.response_invalid' });
      } finally {
        srv.closeAllConnections();
        await new Promise((r) => srv.close(r));
      }
    });

    test('a gateway killed mid-load and restarted lost no exchange it had answered', async () => {
      const answered = [];
      let stop = false;
      const worker = async () => {
        while (!stop) {
          try {
            const r = await ex.call(`${PERSONS}/persons/1`);
            if (r.status === 200) answered.push(r.headers.get('x-road-id'));
          } catch { /* the gateway is gone */ }
        }
      };
      const workers = Array.from({ length: 16 }, worker);
      await sleep(1500);
      await ex.dsb.kill();
      stop = true;
      await Promise.all(workers);
      assert.ok(answered.length > 20, `only ${answered.length} answered before the kill`);
      await ex.dsb.start();
      await waitForConf(ex.dsb);
      const logged = new Set(ex.dsb.sql("SELECT message_id FROM exchange_log WHERE side = 'consumer'").split('\n'));
      const lost = answered.filter((id) => !logged.has(id));
      assert.deepEqual(lost, [], `${lost.length} of ${answered.length} answered exchanges missing from the consumer's log`);
      const provider = new Set(ex.dsaj.sql("SELECT message_id FROM exchange_log WHERE side = 'provider'").split('\n'));
      assert.deepEqual(answered.filter((id) => !provider.has(id)), [], 'and from the provider\'s');
      const after1 = await ex.call(`${PERSONS}/persons/1`);
      assert.equal(after1.status, 200, 'serving again after the restart');
    });

    test('a gateway without any global configuration answers 503 conf_missing', async () => {
      const lone = new Node('lone', ex.dir, backend, 'fail');
      await lone.prepare((n) => `[server]\nrole = gateway\n[exchange]\ncentral_url = http://127.0.0.1:${ex.closedPort}\n`
        + `central_cert = ${ex.dir}/central.crt\ngateway_url = https://127.0.0.1:${ex.closedPort}\n`);
      ex.nodes.push(lone);
      await lone.start();
      assertProblem(await request(`${lone.url}/r1/${PERSONS}/persons/1`, { headers: { 'X-Road-Client': IDS.APP } }), { status: 503, code: 'exchange.conf_missing' });
    });

    test('central node gone: exchanges go on until sealing is overdue, then until the configuration expires', async () => {
      assert.deepEqual(await ex.central.stop(), { code: 0, signal: null });
      const during = await ex.call(`${PERSONS}/persons/1`);
      assert.equal(during.status, 200, 'the last valid configuration is used');
      let r;
      for (let i = 0; i < 100; i++) {
        r = await ex.call(`${PERSONS}/persons/1`);
        if (r.status !== 200) break;
        await sleep(200);
      }
      assertProblem(r, { status: 503, code: 'exchange.timestamping_overdue' });
      for (let i = 0; i < 200; i++) {
        r = await ex.call(`${PERSONS}/persons/1`);
        if (r.json?.code === 'exchange.conf_expired') break;
        await sleep(200);
      }
      assertProblem(r, { status: 503, code: 'exchange.conf_expired' });
    });
  });
}
