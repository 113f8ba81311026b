// Gateway hardening: a replay across a restart of the provider gateway is
// refused before it reaches the back-end; one gateway serves several
// subsystems with one TLS certificate; the consumer waits as long as the
// service's published back-end timeout, which the provider may only lower.
//
// The gateways and the central node run with exchange.backend_timeout_ms =
// 500, so a back-end slower than that needs a service timeout of its own.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backends } from '../lib/egov.mjs';
import {
  ADMIN_TOKEN, IDS, certSha256, peerRequest, request, signedHeaders, startExchange, waitForConf, waitForVersion,
} from '../lib/exchange.mjs';
import { assertProblem } from './lib/http.mjs';
import { assertConforms } from './lib/openapi.mjs';

const PERSONS = `${IDS.REG}/persons`;
const REG2 = 'MO/GOV/DSAJ/REG2';
const APP2 = 'MO/GOV/DSB/APP2';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const auth = { Authorization: `Bearer ${ADMIN_TOKEN}` };

for (const backend of backends()) {
  describe(`exchange gateway hardening (${backend})`, () => {
    let ex;

    before(async () => {
      ex = await startExchange({
        backend, tag: 'hard', gatewayConf: 'backend_timeout_ms = 500\n', centralConf: 'backend_timeout_ms = 500\n',
      });
    });
    after(async () => {
      if (ex) await ex.stop();
    });

    const reg = (...a) => ex.central.cliOk('exchange', ...a);
    const seenBy = (id) => ex.backend.requests.filter((q) => q.headers['x-road-id'] === id).length;
    const waitBoth = async () => {
      await waitForVersion(ex.dsaj, ex.central);
      await waitForVersion(ex.dsb, ex.central);
    };

    test('a replay after the provider gateway restarts is refused before the back-end sees it', async () => {
      const messageId = `replay-${crypto.randomUUID()}`;
      const p = '/persons/7';
      // One signed request, sent twice byte for byte, as an attacker who
      // recorded it would.
      const headers = signedHeaders({ messageId, client: IDS.APP, service: PERSONS, method: 'GET', path: p },
        ex.dsb.signKey, ex.dsb.signCert);
      const send = () => peerRequest(ex.dsaj, `/peer/v1/r1/${PERSONS}${p}`,
        { headers, key: ex.dsb.tlsKey, cert: ex.dsb.tlsCert });

      const first = await send();
      assert.equal(first.status, 200, first.text);
      assert.equal(seenBy(messageId), 1);

      // Without a restart the memory refuses it.
      assertProblem(await send(), { status: 409, code: 'exchange.replay' });
      assert.equal(seenBy(messageId), 1);

      const e = await ex.dsaj.stop();
      assert.deepEqual(e, { code: 0, signal: null });
      await ex.dsaj.start();
      await waitForConf(ex.dsaj);
      assert.match(ex.dsaj.out, /message ids of the last \d+ s reloaded/);

      const again = await send();
      assertProblem(again, { status: 409, code: 'exchange.replay' });
      assert.ok(again.headers.get('x-egov-signature'), 'the refusal is signed by the provider');
      assert.equal(seenBy(messageId), 1, 'the back-end saw the request once');

      // A killed gateway reloads them too, and new ids still pass.
      await ex.dsaj.kill();
      await ex.dsaj.start();
      await waitForConf(ex.dsaj);
      assertProblem(await send(), { status: 409, code: 'exchange.replay' });
      assert.equal(seenBy(messageId), 1);
      const fresh = await ex.call(`${PERSONS}/persons/8`);
      assert.equal(fresh.status, 200, fresh.text);
    });

    test('a back-end slower than the default but within the service\'s timeout answers through both gateways', async () => {
      reg('service', 'add', `${IDS.REG}/slow`, '--timeout-ms', '8000');
      reg('access', 'grant', IDS.APP, `${IDS.REG}/slow`);
      ex.dsaj.cliOk('exchange', 'backend', 'set', `${IDS.REG}/slow`, ex.backend.url);
      await waitBoth();

      const svc = await request(`${ex.central.url}/api/v1/exchange/services/${IDS.REG}/slow`, { headers: auth });
      assert.equal(svc.status, 200);
      assert.equal(svc.json.timeout_ms, 8000);
      assertConforms('GET', `/api/v1/exchange/services/${IDS.REG}/slow`, svc);
      const small = await request(`${ex.central.url}/api/v1/exchange/services/${IDS.REG}/small`, { headers: auth });
      assert.equal(small.json.timeout_ms, 500, 'not set: exchange.backend_timeout_ms');

      // 6 s: past the provider's default (0.5 s) and past what the
      // consumer used to wait (0.5 s + 5 s).
      const t0 = Date.now();
      const r = await ex.call(`${IDS.REG}/slow/slow/6000`);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { slow: true });
      assert.ok(Date.now() - t0 >= 5900);

      // The default still holds for a service without its own timeout.
      const d = await ex.call(`${IDS.REG}/small/slow/1500`);
      assertProblem(d, { status: 504, code: 'exchange.backend_timeout' });

      // The provider's own setting may only lower the service's timeout.
      ex.dsaj.cliOk('exchange', 'backend', 'set', `${IDS.REG}/slow`, ex.backend.url, '--timeout-ms', '300');
      await sleep(1500); // the back-end table is reloaded every second
      const t1 = Date.now();
      const low = await ex.call(`${IDS.REG}/slow/slow/2000`);
      assertProblem(low, { status: 504, code: 'exchange.backend_timeout' });
      assert.ok(Date.now() - t1 < 1900, 'cut off at the provider\'s lower setting');
      ex.dsaj.cliOk('exchange', 'backend', 'set', `${IDS.REG}/slow`, ex.backend.url, '--timeout-ms', '60000');
      await sleep(1500);
      const high = await ex.call(`${IDS.REG}/slow/slow/1000`);
      assert.equal(high.status, 200, 'a higher local setting does not shorten the wait');

      // Bad values are refused.
      const bad = await request(`${ex.central.url}/api/v1/exchange/services`, {
        method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ id: `${IDS.REG}/bad`, timeout_ms: 5 }),
      });
      assertProblem(bad, { status: 400, code: 'json.out_of_range', field: 'timeout_ms' });
      const cli = ex.central.cli('exchange', 'service', 'add', `${IDS.REG}/bad`, '--timeout-ms', '700000');
      assert.equal(cli.status, 2, cli.stderr);
    });

    test('one gateway serves two subsystems with one TLS certificate, as provider and as consumer', async () => {
      // dsaj serves REG and REG2, dsb serves APP and APP2; each gateway
      // registers its one TLS certificate for both of its subsystems.
      reg('subsystem', 'add', REG2, '--gateway', ex.dsaj.peerUrl);
      reg('subsystem', 'add', APP2, '--gateway', ex.dsb.peerUrl);
      reg('service', 'add', `${REG2}/records`);
      for (const client of [IDS.APP, APP2]) {
        reg('access', 'grant', client, `${REG2}/records`);
        reg('access', 'grant', client, PERSONS);
      }
      for (const [g, sub] of [[ex.dsaj, REG2], [ex.dsb, APP2]]) {
        const csr = path.join(ex.dir, `${g.name}-2.csr`);
        writeFileSync(csr, g.cliOk('exchange', 'keygen', sub));
        const crt = path.join(ex.dir, `${g.name}-2.crt`);
        writeFileSync(crt, reg('cert', 'issue', sub, '--usage', 'sign', '--csr', csr));
        g.cliOk('exchange', 'cert', 'install', sub, crt);
        const r = await request(`${ex.central.url}/api/v1/exchange/certs`, {
          method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' },
          body: JSON.stringify({ subsystem: sub, usage: 'tls', certificate: g.tlsCert }),
        });
        assert.equal(r.status, 201, r.text);
        assertConforms('POST', '/api/v1/exchange/certs', r);
        assert.equal(r.json.subsystem, sub);
      }
      ex.dsaj.cliOk('exchange', 'backend', 'set', `${REG2}/records`, ex.backend.url);
      await waitBoth();
      await sleep(1200); // dsaj's back-end table

      const sha = certSha256(ex.dsaj.tlsCert);
      const got = await request(`${ex.central.url}/api/v1/exchange/certs/${sha}`, { headers: auth });
      assert.equal(got.status, 200);
      assertConforms('GET', `/api/v1/exchange/certs/${sha}`, got);
      assert.deepEqual(got.json.subsystems, [IDS.REG, REG2]);
      const one = await request(`${ex.central.url}/api/v1/exchange/certs/${sha}?subsystem=${REG2}`, { headers: auth });
      assert.equal(one.json.subsystem, REG2);

      for (const client of [IDS.APP, APP2]) {
        for (const svc of [PERSONS, `${REG2}/records`]) {
          const r = await ex.call(`${svc}/x/1`, { client });
          assert.equal(r.status, 200, `${client} -> ${svc}: ${r.text}`);
          assert.equal(r.json.headers['x-road-client'], client);
          assert.equal(r.json.headers['x-road-service'], svc);
        }
      }

      // Still refused: the same certificate twice for one subsystem, a
      // signing certificate for a second subsystem, and a gateway's TLS
      // certificate for a subsystem another gateway serves.
      const add = (body) => request(`${ex.central.url}/api/v1/exchange/certs`, {
        method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
      });
      assertProblem(await add({ subsystem: REG2, usage: 'tls', certificate: ex.dsaj.tlsCert }), { status: 409, code: 'exchange.exists' });
      assertProblem(await add({ subsystem: APP2, usage: 'sign', certificate: ex.dsb.signCert }), { status: 409, code: 'exchange.exists' });
      assertProblem(await add({ subsystem: APP2, usage: 'tls', certificate: ex.dsaj.tlsCert }), { status: 409, code: 'exchange.exists' });
      assertProblem(await add({ subsystem: IDS.DOWN, usage: 'tls', certificate: ex.dsaj.tlsCert }), { status: 409, code: 'exchange.exists' });

      // Removing one registration leaves the other: REG2's TLS peer is no
      // longer trusted for it, REG's still is.
      const del = await request(`${ex.central.url}/api/v1/exchange/certs/${sha}?subsystem=${REG2}`, { method: 'DELETE', headers: auth });
      assert.equal(del.status, 204, del.text);
      const after1 = await request(`${ex.central.url}/api/v1/exchange/certs/${sha}`, { headers: auth });
      assert.deepEqual(after1.json.subsystems, [IDS.REG]);
      await waitBoth();
      assertProblem(await ex.call(`${REG2}/records/x/1`), { status: 502, code: 'exchange.provider_unreachable' });
      const still = await ex.call(`${PERSONS}/x/1`);
      assert.equal(still.status, 200, still.text);
      assertProblem(await request(`${ex.central.url}/api/v1/exchange/certs/${sha}?subsystem=nope`, { method: 'DELETE', headers: auth }),
        { status: 400, code: 'validation.invalid_field', field: 'subsystem' });
    });
  });
}
