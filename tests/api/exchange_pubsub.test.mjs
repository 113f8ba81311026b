// Publish/subscribe through the exchange (docs/exchange.md, "Publish /
// subscribe"): a central node, the owner's gateway (dsaj, room of
// MO/GOV/DSAJ/REG) and the subscriber's gateway (dsb, MO/GOV/DSB/APP), a
// subscriber back-end started here. Event types, push and pull
// subscriptions, publishing, push delivery as signed exchanges logged on
// both sides, redelivery with back-off while the subscriber's back-end is
// down, restarts of either gateway mid-delivery, the same X-Road-Id on
// duplicates, pull + confirm, and refusals (owner only, access rights,
// unknown push targets, bad signatures, replays).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { backends } from '../lib/egov.mjs';
import {
  IDS, certSha256, peerRequest, signedHeaders, startExchange, waitForConf,
} from '../lib/exchange.mjs';

const ROOM = IDS.REG;
const BORN = `${ROOM}/born`;

// The subscriber's back-end: answers 503 while `down`, holds its answer
// while `hold` (until release()), else 200; keeps every push it saw.
async function startSubscriber() {
  const s = { down: false, hold: false, seen: [], held: [] };
  s.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      s.seen.push({ url: req.url, headers: req.headers, body, json: JSON.parse(body), down: s.down, t: Date.now() });
      if (s.down) res.writeHead(503, { 'Content-Type': 'application/json' }).end('{"busy":true}');
      else if (s.hold) s.held.push(res);
      else res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise((r) => s.server.listen(0, '127.0.0.1', r));
  s.url = `http://127.0.0.1:${s.server.address().port}`;
  s.forEvent = (id) => s.seen.filter((x) => x.json.id === id);
  s.release = () => {
    s.hold = false;
    for (const res of s.held.splice(0)) if (!res.destroyed) res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
  };
  s.close = () => { s.server.closeAllConnections(); return new Promise((r) => s.server.close(r)); };
  return s;
}

async function until(what, fn, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const uuid = () => crypto.randomUUID();

// The configuration version a node holds (`egov exchange conf show`).
const confVersion = (node) => {
  const r = node.cli('exchange', 'conf', 'show');
  const m = /^version\t(\d+)$/m.exec(r.stdout ?? '');
  return r.status === 0 && m ? Number(m[1]) : -1;
};

// Waits until a gateway has the central node's current configuration.
async function waitForVersion(node, central) {
  const want = confVersion(central);
  assert.ok(want > 0, 'the central node has a configuration');
  await until(`${node.name} at version ${want}`, () => confVersion(node) >= want);
}

for (const backend of backends()) {
  describe(`exchange pub/sub (${backend})`, { timeout: 240000 }, () => {
    let ex;
    let sub;
    // The room's calls, through a caller's own gateway.
    const room = (code, p, { method = 'GET', body, client = IDS.APP, headers = {} } = {}) => {
      const via = client === IDS.REG ? ex.dsaj : ex.dsb;
      const h = { ...headers };
      if (body !== undefined) h['Content-Type'] = 'application/json';
      return ex.call(`${ROOM}/${code}${p}`, {
        method, client, via, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
      });
    };
    const publish = (type, event, id = uuid(), client = IDS.APP) =>
      room('pub', `/v1/${type}`, { method: 'POST', client, headers: { 'X-Road-Id': id }, body: { eventType: type, event } });
    const outbox = (id) => ex.dsaj.sql(
      `SELECT o.state || ':' || o.attempts FROM exchange_pubsub_outbox o JOIN exchange_pubsub_event e ON e.seq = o.seq WHERE e.id = '${id}'`);

    before(async () => {
      ex = await startExchange({ backend, tag: `ps_${backend}`, gatewayConf: 'retry_ms = 100\nretry_max_s = 1\n' });
      sub = await startSubscriber();
      const reg = (...a) => ex.central.cliOk('exchange', ...a);
      for (const code of ['api', 'pub', 'pull']) {
        reg('service', 'add', `${ROOM}/${code}`, '--log', 'full');
        reg('access', 'grant', IDS.APP, `${ROOM}/${code}`);
      }
      // The registry says which event types exist; the room keeps them.
      reg('event-type', 'add', BORN);
      reg('event-type', 'add', `${ROOM}/moved`);
      reg('event-type', 'add', `${ROOM}/died`);
      // The owner manages and publishes through its own gateway; it is
      // given no right on pull.
      reg('access', 'grant', IDS.REG, `${ROOM}/api`);
      reg('access', 'grant', IDS.REG, `${ROOM}/pub`);
      await waitForVersion(ex.dsaj, ex.central);
      await waitForVersion(ex.dsb, ex.central);
    });

    after(async () => {
      if (sub) { sub.release(); await sub.close(); }
      if (ex) await ex.stop();
    });

    test('event types: the owner defines them, others read them', async () => {
      let r = await room('api', '/v1/eventType');
      assert.equal(r.status, 204, r.text);
      r = await room('api', '/v1/eventType', { method: 'POST', body: { eventType: 'born', schema: { type: 'object' } } });
      assert.equal(r.status, 403, r.text);
      assert.equal(r.json.code, 'pubsub.not_owner');
      for (const t of ['born', 'moved', 'died']) {
        r = await room('api', '/v1/eventType', { method: 'POST', client: IDS.REG, body: { eventType: t, schema: { type: 'object' } } });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.eventType, t);
      }
      r = await room('api', '/v1/eventType', { method: 'POST', client: IDS.REG, body: { eventType: 'born', schema: {} } });
      assert.equal(r.status, 409);
      assert.equal(r.json.code, 'pubsub.event_type_exists');
      r = await room('api', '/v1/eventType', { method: 'POST', client: IDS.REG, body: { eventType: 'gone', schema: {} } });
      assert.equal(r.status, 404, r.text);
      assert.equal(r.json.code, 'exchange.unknown_event_type');
      r = await room('api', '/v1/eventType', { method: 'POST', client: IDS.REG, body: { eventType: 'x y', schema: {} } });
      assert.equal(r.status, 400);
      assert.equal(r.json.code, 'pubsub.event_type_invalid');
      r = await room('api', '/v1/eventType');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, ['born', 'died', 'moved']);
      r = await room('api', '/v1/eventType/born');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { eventType: 'born', schema: { type: 'object' } });
      // The answer is signed by the provider and carries the message id.
      assert.ok(r.headers.get('x-road-id'));
    });

    test('subscribe: push (URL kept on the subscriber gateway) and pull', async () => {
      ex.dsb.cliOk('exchange', 'pubsub', 'push-url', 'set', IDS.APP, BORN, `${sub.url}/hook`);
      assert.match(ex.dsb.cliOk('exchange', 'pubsub', 'push-url', 'list'), new RegExp(`${IDS.APP}\t${BORN}\t${sub.url}/hook`));
      let r = await room('api', '/v1/subs/born', { method: 'POST', body: { eventType: 'born', delivery: 'PUSH' } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.eventType, 'born');
      assert.equal(r.json.delivery, 'PUSH');
      assert.deepEqual(r.json.subscriberId, { instanceId: 'MO', memberClass: 'GOV', memberCode: 'DSB', applicationCode: 'APP' });
      r = await room('api', '/v1/subs/born', { method: 'POST', body: { eventType: 'born' } });
      assert.equal(r.status, 409);
      assert.equal(r.json.code, 'pubsub.subscription_exists');
      r = await room('api', '/v1/subs/moved', { method: 'POST', body: { eventType: 'moved', delivery: 'PULL', options: { TTL: 600 } } });
      assert.equal(r.status, 200, r.text);
      // The client names its push URL to its own gateway, which keeps it
      // and never sends it on.
      r = await room('api', '/v1/subs/died', {
        method: 'POST', body: { eventType: 'died' }, headers: { 'X-Egov-Push-Url': `${sub.url}/died-hook` },
      });
      assert.equal(r.status, 200, r.text);
      assert.match(ex.dsb.cliOk('exchange', 'pubsub', 'push-url', 'list'), new RegExp(`${IDS.APP}\t${ROOM}/died\t${sub.url}/died-hook`));
      r = await room('api', '/v1/subs/moved', {
        method: 'PATCH', body: { eventType: 'moved' }, headers: { 'X-Egov-Push-Url': 'file:///etc/passwd' },
      });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.code, 'pubsub.push_url_invalid');
      r = await room('api', '/v1/subs');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.map((s) => [s.eventType, s.delivery]), [['born', 'PUSH'], ['died', 'PUSH'], ['moved', 'PULL']]);
      // Not in the registry: refused before the room is asked.
      r = await room('api', '/v1/subs/nope', { method: 'POST', body: { eventType: 'nope' } });
      assert.equal(r.status, 404);
      assert.equal(r.json.code, 'exchange.unknown_event_type');
    });

    test('publish: pushed to the subscriber back-end, signed and logged on both sides', async () => {
      const id = uuid();
      const r = await publish('born', { mother: 'Jane', place: 'Kiang Wu' }, id);
      assert.equal(r.status, 201, r.text);
      assert.deepEqual(r.json, { id });
      const got = await until('the push', () => sub.forEvent(id)[0]);
      assert.equal(got.url, '/hook');
      assert.equal(got.headers['x-road-id'], id);
      assert.equal(got.headers['x-road-client'], IDS.REG);
      assert.equal(got.json.eventType, 'born');
      assert.deepEqual(got.json.event, { mother: 'Jane', place: 'Kiang Wu' });
      assert.deepEqual(got.json.publisherId, { instanceId: 'MO', memberClass: 'GOV', memberCode: 'DSB', applicationCode: 'APP' });
      await until('delivered', () => outbox(id) === '1:1');
      const st = await room('pub', `/v1/born/${id}`);
      assert.equal(st.status, 200, st.text);
      assert.equal(st.json.id, id);
      assert.equal(st.json.deliveries.delivered, 1);
      // Both message logs hold the push exchange, signed both ways.
      const svc = `${IDS.APP}/push`;
      await until('provider-side log', () => Number(ex.dsb.sql(`SELECT COUNT(*) FROM exchange_log WHERE service = '${svc}' AND side = 'provider' AND path = '/born/${id}'`)) === 1);
      assert.equal(Number(ex.dsaj.sql(`SELECT COUNT(*) FROM exchange_log WHERE service = '${svc}' AND side = 'consumer' AND path = '/born/${id}' AND status = 200`)), 1);
      const m = await (await fetch(`${ex.dsaj.url}/metrics`)).text();
      assert.ok(Number(/^egov_exchange_pubsub_pushes_total\{result="delivered"\} (\d+)$/m.exec(m)?.[1]) >= 1, m);
      const m2 = await (await fetch(`${ex.dsb.url}/metrics`)).text();
      assert.ok(Number(/^egov_exchange_pubsub_received_total (\d+)$/m.exec(m2)?.[1]) >= 1);
    });

    test('push URL from the subscription itself', async () => {
      const id = uuid();
      assert.equal((await publish('died', { who: 'x' }, id, IDS.REG)).status, 201);
      const got = await until('the push', () => sub.forEvent(id)[0]);
      assert.equal(got.url, '/died-hook');
      assert.equal(got.headers['x-road-id'], id);
    });

    test('subscriber back-end down, then up: redelivered with back-off, same X-Road-Id', async () => {
      sub.down = true;
      const id = uuid();
      assert.equal((await publish('born', { n: 2 }, id)).status, 201);
      await until('three failed attempts', () => sub.forEvent(id).length >= 3);
      const row = outbox(id).split(':');
      assert.equal(row[0], '0'); // still pending
      assert.ok(Number(row[1]) >= 3);
      sub.down = false;
      await until('delivered', () => outbox(id).startsWith('1:'));
      const all = sub.forEvent(id);
      assert.ok(all.length >= 4);
      assert.ok(all.every((x) => x.headers['x-road-id'] === id), 'every attempt carries the event id');
      assert.equal(all.at(-1).down, false);
      // Back-off: retry_ms (100) doubling, so the gaps are at least 100,
      // 200 and 400 ms.
      const gaps = all.slice(1).map((x, i) => x.t - all[i].t);
      [100, 200, 400].forEach((min, i) => assert.ok(gaps[i] >= min - 10, `gap ${i}: ${gaps}`));
      // Every attempt is a logged exchange on the owner's side.
      assert.ok(Number(ex.dsaj.sql(`SELECT COUNT(*) FROM exchange_log WHERE side = 'consumer' AND path = '/born/${id}' AND status = 503`)) >= 3);
    });

    test('subscriber gateway restarted mid-delivery: delivered once it is back', async () => {
      await ex.dsb.stop();
      const id = uuid();
      assert.equal((await publish('born', { n: 3 }, id, IDS.REG)).status, 201);
      await until('a failed attempt', () => Number(outbox(id).split(':')[1]) >= 2);
      assert.equal(sub.forEvent(id).length, 0);
      await ex.dsb.start();
      await waitForConf(ex.dsb);
      await until('delivered after the restart', () => outbox(id).startsWith('1:'));
      assert.equal(sub.forEvent(id)[0].headers['x-road-id'], id);
    });

    test('owner gateway killed mid-delivery: sent again at once after its restart', async () => {
      // The subscriber's back-end holds the push: the owner's gateway has
      // it in flight (leased for minutes) when it is killed.
      sub.hold = true;
      const id = uuid();
      assert.equal((await publish('born', { n: 4 }, id)).status, 201);
      await until('the push in flight', () => sub.forEvent(id).length === 1);
      assert.equal(ex.dsaj.sql(`SELECT o.inflight FROM exchange_pubsub_outbox o JOIN exchange_pubsub_event e ON e.seq = o.seq WHERE e.id = '${id}'`), '1');
      await ex.dsaj.kill();
      sub.release();
      await ex.dsaj.start();
      await waitForConf(ex.dsaj);
      // Well before the lease would run out: the restart ended it.
      await until('delivered after the restart', () => outbox(id) === '1:2', 15000);
      const all = sub.forEvent(id);
      assert.equal(all.length, 2, 'delivered twice: at least once');
      assert.ok(all.every((x) => x.headers['x-road-id'] === id), 'the duplicate carries the same X-Road-Id');
    });

    test('pull: the same event until confirmed', async () => {
      let r = await room('pull', '/v1/moved');
      assert.equal(r.status, 404);
      assert.equal(r.json.code, 'pubsub.no_event');
      const id1 = uuid();
      const id2 = uuid();
      assert.equal((await publish('moved', { to: 'Taipa' }, id1)).status, 201);
      assert.equal((await publish('moved', { to: 'Coloane' }, id2)).status, 201);
      r = await room('pull', '/v1/moved');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.id, id1);
      assert.deepEqual(r.json.event, { to: 'Taipa' });
      r = await room('pull', '/v1/moved');
      assert.equal(r.json.id, id1);
      r = await room('pull', `/v1/moved/${id1}`, { method: 'DELETE' });
      assert.equal(r.status, 204, r.text);
      r = await room('pull', `/v1/moved/${id1}`, { method: 'DELETE' });
      assert.equal(r.status, 404);
      r = await room('pull', '/v1/moved');
      assert.equal(r.json.id, id2);
      r = await room('pull', '/v1/born');
      assert.equal(r.status, 409);
      assert.equal(r.json.code, 'pubsub.not_pull');
    });

    test('access: no right on pull, not the publisher', async () => {
      let r = await room('pull', '/v1/moved', { client: IDS.REG });
      assert.equal(r.status, 403, r.text);
      assert.equal(r.json.code, 'exchange.access_denied');
      const id = uuid();
      assert.equal((await publish('moved', { x: 1 }, id, IDS.REG)).status, 201);
      r = await room('pub', `/v1/moved/${id}`);
      assert.equal(r.status, 403);
      assert.equal(r.json.code, 'pubsub.not_publisher');
    });

    test('push route: refuses unknown targets, bad signatures and replays', async () => {
      const g = ex.dsaj;
      const push = (pathTail, id, body, tamper) => {
        const p = `/peer/v1/push/${IDS.APP}${pathTail}`;
        const f = {
          messageId: id, client: IDS.REG, service: `${IDS.APP}/push`, method: 'POST', path: pathTail,
          body: Buffer.from(body), contentType: 'application/json',
        };
        const h = signedHeaders(f, g.signKey, g.signCert);
        if (tamper) h['X-Egov-Signature'] = h['X-Egov-Signature'].replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
        return peerRequest(ex.dsb, p, { method: 'POST', headers: h, body, key: g.tlsKey, cert: g.tlsCert });
      };
      const ev = uuid();
      const body = JSON.stringify({ id: ev, eventType: 'born', event: {} });
      // No push URL for that event type on the subscriber's gateway.
      let r = await push(`/moved/${ev}`, uuid(), body);
      assert.equal(r.status, 404, r.text);
      assert.equal(r.json.code, 'pubsub.push_unknown');
      r = await push(`/born/${ev}`, uuid(), body, true);
      assert.equal(r.status, 401, r.text);
      assert.equal(r.json.code, 'exchange.signature_invalid');
      const mid = uuid();
      r = await push(`/born/${ev}`, mid, body);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-road-id'), mid);
      assert.equal(r.headers.get('x-egov-signer-cert'), certSha256(ex.dsb.signCert));
      r = await push(`/born/${ev}`, mid, body);
      assert.equal(r.status, 409, r.text);
      assert.equal(r.json.code, 'exchange.replay');
      assert.equal(sub.forEvent(ev).length, 1);
      // Across a restart of the subscriber's gateway too: the replay is
      // refused before it reaches the subscriber's back-end.
      await ex.dsb.stop();
      await ex.dsb.start();
      await waitForConf(ex.dsb);
      r = await push(`/born/${ev}`, mid, body);
      assert.equal(r.status, 409, r.text);
      assert.equal(r.json.code, 'exchange.replay');
      assert.equal(sub.forEvent(ev).length, 1);
      // Refusals are audited on the subscriber's gateway.
      assert.ok(Number(ex.dsb.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'exchange.pubsub.push_refused'")) >= 3);
    });

    test('unsubscribe and delete the event type', async () => {
      let r = await room('api', '/v1/subs/born', { method: 'DELETE' });
      assert.equal(r.status, 204, r.text);
      r = await room('api', '/v1/subs/born');
      assert.equal(r.status, 404);
      r = await room('api', '/v1/eventType/moved', { method: 'DELETE' });
      assert.equal(r.status, 403);
      r = await room('api', '/v1/eventType/moved', { method: 'DELETE', client: IDS.REG });
      assert.equal(r.status, 204);
      r = await room('api', '/v1/eventType');
      assert.deepEqual(r.json, ['born', 'died']);
    });

    test('both message logs, pushes included, verify offline', async () => {
      for (const n of [ex.dsaj, ex.dsb]) {
        const v = n.cli('exchange', 'log', 'verify');
        assert.equal(v.status, 0, `${n.name}: ${v.stdout}${v.stderr}`);
      }
    });
  });
}
