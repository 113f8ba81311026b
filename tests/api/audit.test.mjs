// The audit log through the API (paging, chain links, verify) and through
// `egov audit verify`, after tampering with the table directly: a record
// changed, deleted, inserted, or two records swapped.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { backends, run } from '../lib/egov.mjs';
import { adminConfig, assertProblem, auth, dbExec, request, start, stopClean } from './lib/http.mjs';
import { assertConforms } from './lib/openapi.mjs';

const ZERO = '0'.repeat(64);

const notice = (i) => ({
  category: 'news',
  title: { 'zh-Hant': `通告 ${i}`, pt: `Aviso ${i}`, en: `Notice ${i}` },
  body: { 'zh-Hant': '內容', pt: 'Texto', en: 'Text' },
});

const sql = dbExec;

async function allRecords(node) {
  const items = [];
  let afterSeq = 0;
  for (let i = 0; i < 1000; i++) {
    const r = await request(node, `/api/v1/audit?after=${afterSeq}&limit=3`, { headers: auth });
    assert.equal(r.status, 200, r.text);
    const page = assertConforms('GET', '/api/v1/audit', r);
    items.push(...page.items);
    if (page.next_after === null) return items;
    assert.equal(page.next_after, page.items[page.items.length - 1].seq);
    afterSeq = page.next_after;
  }
  throw new Error('audit paging did not end');
}

// Tampering, each leaving the first bad record at seq 3 (see audit_verify.c).
const TAMPER = {
  change: { fault: 'changed', seqs: [3], sql: "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3" },
  delete: { fault: 'deleted', seqs: [3], sql: 'DELETE FROM audit_log WHERE seq = 3' },
  insert: {
    fault: 'inserted',
    seqs: [3],
    sql: 'UPDATE audit_log SET seq = -(seq + 1) WHERE seq >= 3; UPDATE audit_log SET seq = -seq WHERE seq < 0; '
      + "INSERT INTO audit_log (seq, ts, actor, action, object, details, prev_hash, hash) VALUES (3, '2024-01-01T00:00:00.000000Z', "
      + "'mallory', 'info.notice.create', 'forged', '{}', (SELECT hash FROM audit_log WHERE seq = 2), '" + 'ab'.repeat(32) + "')",
  },
  reorder: {
    fault: 'reordered',
    seqs: [3],
    sql: 'UPDATE audit_log SET seq = -3 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = -3',
  },
};

for (const backend of backends()) {
  describe(`audit (${backend})`, () => {
    let node;
    before(async () => { node = await start(backend, 'audit', { config: adminConfig() }); });
    after(async () => { await stopClean(node); });

    const verifyCli = () => run(['audit', 'verify', '--data', node.dataDir, '--database', node.database]);

    test('reading the audit log needs audit.read', async () => {
      for (const p of ['/api/v1/audit', '/api/v1/audit/verify']) {
        for (const h of [{}, { Authorization: 'Bearer not-the-operator-token-at-all-000' }]) {
          const r = await request(node, p, { headers: h });
          assertProblem(r, { status: 401, code: 'unauthorized' });
          assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer\b/);
          assertConforms('GET', p, r);
        }
      }
    });

    test('each notice created appends a chained record; verify agrees', async () => {
      const before1 = await allRecords(node);
      const ids = [];
      for (let i = 0; i < 5; i++) {
        const r = await request(node, '/api/v1/notices', { method: 'POST', headers: auth, json: notice(i) });
        assert.equal(r.status, 201, r.text);
        ids.push(r.json.id);
      }
      const all = await allRecords(node);
      const added = all.slice(before1.length);
      assert.equal(added.length, 5, 'one record per create');
      added.forEach((rec, i) => {
        assert.equal(rec.action, 'info.notice.create');
        assert.ok(rec.object.includes(ids[i]), `record object ${rec.object} names notice ${ids[i]}`);
        assert.ok(rec.actor.length > 0, 'actor recorded');
      });
      all.forEach((rec, i) => {
        assert.equal(rec.seq, i + 1, 'seq without gaps');
        assert.equal(rec.prev_hash, i === 0 ? ZERO : all[i - 1].hash, `record ${rec.seq} links to its predecessor`);
        if (i > 0) assert.ok(Date.parse(rec.ts) >= Date.parse(all[i - 1].ts), 'time does not go back');
      });
      const v = await request(node, '/api/v1/audit/verify', { headers: auth });
      assert.equal(v.status, 200);
      const body = assertConforms('GET', '/api/v1/audit/verify', v);
      assert.deepEqual(body, { ok: true, records: all.length, head: all[all.length - 1].hash });
      const m = await request(node, '/metrics');
      const gauge = /^egov_audit_records(?:\{\})? (\d+)$/m.exec(m.text);
      assert.ok(gauge, 'egov_audit_records in /metrics');
      assert.equal(Number(gauge[1]), all.length, 'egov_audit_records is the chain length');
    });

    test('audit paging parameters are checked', async () => {
      const all = await allRecords(node);
      const r = await request(node, '/api/v1/audit?after=2&limit=2', { headers: auth });
      assert.deepEqual(r.json.items.map((x) => x.seq), [3, 4]);
      assert.equal(r.json.next_after, 4);
      const last = await request(node, `/api/v1/audit?after=${all.length}`, { headers: auth });
      assert.deepEqual(last.json, { items: [], next_after: null });
      for (const [q, field] of [['limit=0', 'limit'], ['limit=1001', 'limit'], ['limit=x', 'limit'], ['after=-1', 'after'], ['after=abc', 'after']]) {
        const b = await request(node, `/api/v1/audit?${q}`, { headers: auth });
        assertProblem(b, { status: 400, code: 'validation.invalid_field', field });
        assertConforms('GET', '/api/v1/audit', b);
      }
    });

    test('concurrent creates keep one unbroken chain', async () => {
      const n0 = (await allRecords(node)).length;
      const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => request(node, '/api/v1/notices', { method: 'POST', headers: auth, json: notice(100 + i) })));
      for (const r of rs) assert.equal(r.status, 201, r.text);
      const v = (await request(node, '/api/v1/audit/verify', { headers: auth })).json;
      assert.equal(v.ok, true, JSON.stringify(v));
      assert.equal(v.records, n0 + 20);
    });

    test('egov audit verify exits 0 on an intact chain', () => {
      const r = verifyCli();
      assert.equal(r.status, 0, `exit ${r.status}: ${r.stdout}${r.stderr}`);
    });

    for (const [kind, t] of Object.entries(TAMPER)) {
      test(`tampering (${kind}) is found by the API and by egov audit verify`, async () => {
        sql(node, 'DROP TABLE IF EXISTS audit_backup; CREATE TABLE audit_backup AS SELECT * FROM audit_log');
        try {
          sql(node, t.sql);
          const v = await request(node, '/api/v1/audit/verify', { headers: auth });
          assert.equal(v.status, 200, v.text);
          const body = assertConforms('GET', '/api/v1/audit/verify', v);
          assert.equal(body.ok, false, JSON.stringify(body));
          assert.ok(t.seqs.includes(body.first_bad), `first_bad ${body.first_bad}`);
          assert.equal(body.fault, t.fault);
          const r = verifyCli();
          const out = `${r.stdout}${r.stderr}`;
          assert.notEqual(r.status, 0, `exit status after ${kind}: ${out}`);
          assert.ok(r.status !== null, `egov audit verify did not finish: ${r.error}`);
          assert.match(out, new RegExp(`\\b${body.first_bad}\\b`), `output names seq ${body.first_bad}: ${out}`);
        } finally {
          sql(node, 'DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM audit_backup; DROP TABLE audit_backup');
        }
        const again = (await request(node, '/api/v1/audit/verify', { headers: auth })).json;
        assert.equal(again.ok, true, `restored chain verifies: ${JSON.stringify(again)}`);
      });
    }
  });
}
