// The gateways' message log at the command line (docs/exchange.md, "Message
// log"): exchanges through a consumer and a provider gateway are logged on
// both sides and sealed by the central node's TSA; `egov exchange log
// verify` passes on both; `show` and `list` find an exchange by message id
// and by data subject; an archive verifies with no database, on a data
// directory that has never seen the log; tampering with the database (a
// changed, deleted or reordered record, a swapped body) or with an archive
// (a record, a body, a seal) is named and exits 1; a gateway killed in the
// middle of a load keeps every exchange it had answered; with the TSA down
// past the grace period new exchanges are refused until a seal succeeds.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { backends, bin, root } from '../lib/egov.mjs';
import { IDS, startExchange } from '../lib/exchange.mjs';

const PERSONS = `${IDS.REG}/persons`;
const SMALL = `${IDS.REG}/small`;

async function until(what, fn, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// `egov exchange log ...` on a node: { status, stdout, stderr }.
const log = (node, ...args) => node.cli('exchange', 'log', ...args);

// The records a node holds, from `show` (one JSON object per line).
const show = (node, id) => {
  const r = log(node, 'show', '--message-id', id);
  return r.status === 0 ? r.stdout.trim().split('\n').map((l) => JSON.parse(l)) : [];
};

const sealedUpTo = (out) => Number((/sealed up to record (\d+)/.exec(out) ?? [])[1] ?? -1);
const records = (out) => Number((/chain intact: (\d+) records/.exec(out) ?? [])[1] ?? -1);

// Waits until every record of the node's log is under a verified seal.
async function waitSealed(node) {
  return until(`${node.name}: the log sealed`, () => {
    const r = log(node, 'verify');
    return r.status === 0 && records(r.stdout) > 0 && sealedUpTo(r.stdout) === records(r.stdout) ? r.stdout : null;
  });
}

// `egov exchange log verify --file` on a data directory of its own: the
// archive is all it has.
function verifyElsewhere(file, anchor) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'egov-exlog-'));
  try {
    return spawnSync(bin, ['exchange', 'log', 'verify', '--file', file, '--anchor', anchor, '--data', dir,
      '--database', `sqlite:${dir}/egov.db`], { encoding: 'utf8', timeout: 60000, cwd: root,
      env: { ...process.env, EGOV_WEB_DIR: path.join(root, 'web') } });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// A copy of an archive with one change made by fn(lines) (lines parsed).
function tamperArchive(src, dst, fn) {
  const lines = readFileSync(src, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  fn(lines);
  writeFileSync(dst, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
}

for (const backend of backends()) {
  describe(`message log (${backend})`, () => {
    let ex;
    const ids = [];
    const anchor = () => path.join(ex.dir, 'ca.pem');

    before(async () => {
      ex = await startExchange({ backend, tag: `exlog_${backend}` });
      for (let i = 0; i < 6; i++) {
        const id = crypto.randomUUID();
        const r = await ex.call(`${PERSONS}/persons/${i}`, {
          headers: { 'X-Road-Id': id, 'X-Egov-Data-Subject': `1234567(${i % 2})`, 'X-Egov-Purpose': 'benefit check' },
        });
        assert.equal(r.status, 200, r.text);
        ids.push(id);
      }
      for (let i = 0; i < 3; i++) {
        const id = crypto.randomUUID();
        const r = await ex.call(`${SMALL}/lookup`, {
          method: 'POST', headers: { 'X-Road-Id': id, 'Content-Type': 'application/json' }, body: `{"n":${i}}`,
        });
        assert.equal(r.status, 200, r.text);
        ids.push(id);
      }
    });

    after(async () => { if (ex) await ex.stop(); });

    test('both gateways log every exchange, sealed, and verify', async () => {
      for (const node of [ex.dsb, ex.dsaj]) {
        const out = await waitSealed(node);
        assert.match(out, /chain intact: 9 records/);
        assert.match(out, /signatures verified: 18/);
        assert.match(out, /^OK$/m);
      }
      // Full mode keeps bodies, digest mode only their SHA-256.
      const [full] = show(ex.dsb, ids[0]);
      assert.equal(full.side, 'consumer');
      assert.equal(full.client, IDS.APP);
      assert.equal(full.service, PERSONS);
      assert.equal(full.path, '/persons/0');
      assert.equal(full.status, 200);
      assert.equal(full.log_mode, 'full');
      assert.equal(full.purpose, 'benefit check');
      assert.equal(full.data_subject, '1234567(0)');
      assert.ok(full.response_body.length > 0);
      const [digest] = show(ex.dsaj, ids[6]);
      assert.equal(digest.side, 'provider');
      assert.equal(digest.log_mode, 'digest');
      assert.equal(digest.request_body, null);
      assert.equal(digest.request_body_sha256, crypto.createHash('sha256').update('{"n":0}').digest('hex'));
    });

    test('show and list find exchanges by message id and data subject', () => {
      assert.equal(log(ex.dsb, 'show', '--message-id', 'no-such-id').status, 1);
      const r = log(ex.dsb, 'list', '--subject', '1234567(1)');
      assert.equal(r.status, 0, r.stderr);
      const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(rows.map((x) => x.message_id), [ids[1], ids[3], ids[5]]);
      for (const x of rows) {
        assert.equal(x.purpose, 'benefit check');
        assert.equal(x.request_body, undefined); // the list carries no bodies
      }
      assert.equal(log(ex.dsb, 'list', '--subject', 'nobody').stdout, '');
      assert.equal(log(ex.dsb, 'list').status, 2);
      assert.equal(log(ex.dsb, 'frobnicate').status, 2);
    });

    test('an archive verifies on a machine without the log; a tampered one does not', async () => {
      await waitSealed(ex.dsaj);
      const file = path.join(ex.dir, 'dsaj-archive.jsonl');
      const a = log(ex.dsaj, 'archive', '--out', file);
      assert.equal(a.status, 0, a.stderr);
      assert.match(a.stdout, /archived 9 records/);
      let r = verifyElsewhere(file, anchor());
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /chain intact: 9 records/);
      assert.match(r.stdout, /sealed up to record 9/);

      const bad = path.join(ex.dir, 'bad.jsonl');
      tamperArchive(file, bad, (l) => { l.find((x) => x.type === 'record' && x.seq === 3).purpose = 'curiosity'; });
      r = verifyElsewhere(bad, anchor());
      assert.equal(r.status, 1);
      assert.match(r.stdout, /chain BROKEN at record 3: changed/);

      tamperArchive(file, bad, (l) => { l.splice(l.findIndex((x) => x.type === 'record' && x.seq === 4), 1); });
      r = verifyElsewhere(bad, anchor());
      assert.equal(r.status, 1);
      assert.match(r.stdout, /chain BROKEN at record 4: deleted/);

      tamperArchive(file, bad, (l) => {
        const rec = l.find((x) => x.type === 'record' && x.log_mode === 'full');
        rec.response_body = Buffer.from('{"name":"someone else"}').toString('base64');
      });
      r = verifyElsewhere(bad, anchor());
      assert.equal(r.status, 1);
      assert.match(r.stdout, /signatures BAD at record \d+: the response body does not match its digest/);

      tamperArchive(file, bad, (l) => {
        const s = l.find((x) => x.type === 'seal');
        const der = Buffer.from(s.token, 'base64');
        der[der.length - 10] ^= 1; // inside the TSA's signature
        s.token = der.toString('base64');
      });
      r = verifyElsewhere(bad, anchor());
      assert.equal(r.status, 1);
      assert.match(r.stdout, /seal BAD/);

      // Another CA's root is no anchor for these seals.
      r = verifyElsewhere(file, path.join(ex.dsb.dataDir, 'pki/root.crt'));
      assert.equal(r.status, 1);
      assert.match(r.stdout, /seal BAD/);

      // A partial archive starts where it says.
      assert.equal(log(ex.dsaj, 'archive', '--out', file, '--from', '5').status, 0);
      r = verifyElsewhere(file, anchor());
      assert.equal(r.status, 0, r.stdout);
      assert.match(r.stdout, /chain intact: 5 records/);
      assert.equal(log(ex.dsaj, 'archive', '--out', file, '--from', 'x').status, 2);
      assert.equal(log(ex.dsaj, 'archive').status, 2);
      assert.equal(verifyElsewhere(path.join(ex.dir, 'missing.jsonl'), anchor()).status, 2);
    });

    test('tampering with a gateway database is named', async () => {
      const node = ex.dsb;
      await waitSealed(node);
      const ok = () => {
        const r = log(node, 'verify');
        assert.equal(r.status, 0, r.stdout);
      };
      const broken = (re) => {
        const r = log(node, 'verify');
        assert.equal(r.status, 1, r.stdout);
        assert.match(r.stdout, re);
        assert.match(r.stdout, /^FAILED$/m);
      };
      const purpose = node.sql('SELECT purpose FROM exchange_log WHERE seq = 2');
      node.sql("UPDATE exchange_log SET purpose = 'curiosity' WHERE seq = 2");
      broken(/chain BROKEN at record 2: changed/);
      node.sql(`UPDATE exchange_log SET purpose = '${purpose}' WHERE seq = 2`);
      ok();

      node.sql('UPDATE exchange_log SET seq = -1 WHERE seq = 5');
      node.sql('UPDATE exchange_log SET seq = 5 WHERE seq = 6');
      node.sql('UPDATE exchange_log SET seq = 6 WHERE seq = -1');
      broken(/chain BROKEN at record 5: reordered/);
      node.sql('UPDATE exchange_log SET seq = -1 WHERE seq = 5');
      node.sql('UPDATE exchange_log SET seq = 5 WHERE seq = 6');
      node.sql('UPDATE exchange_log SET seq = 6 WHERE seq = -1');
      ok();

      // Bodies are not in the chain but under the signed digests.
      node.sql('CREATE TABLE exlog_saved AS SELECT response_body FROM exchange_log WHERE seq = 1');
      node.sql('UPDATE exchange_log SET response_body = (SELECT response_body FROM exchange_log WHERE seq = 2) WHERE seq = 1');
      broken(/signatures BAD at record 1: the response body does not match its digest/);
      node.sql('UPDATE exchange_log SET response_body = (SELECT response_body FROM exlog_saved) WHERE seq = 1');
      node.sql('DROP TABLE exlog_saved');
      ok();
    });

    test('a gateway killed mid-load keeps every exchange it answered', async () => {
      const answered = [];
      const inflight = [];
      let stop = false;
      const worker = async () => {
        while (!stop) {
          const id = crypto.randomUUID();
          try {
            const r = await ex.call(`${PERSONS}/persons/load`, { headers: { 'X-Road-Id': id } });
            if (r.status === 200) answered.push(id);
          } catch { /* the gateway went away mid-call */ }
        }
      };
      for (let i = 0; i < 16; i++) inflight.push(worker());
      await until('some exchanges answered', () => answered.length >= 100);
      await ex.dsb.kill();
      stop = true;
      await Promise.all(inflight);
      await ex.dsb.start();
      const missing = answered.filter((id) => show(ex.dsb, id).length !== 1);
      assert.deepEqual(missing, [], `${missing.length} of ${answered.length} answered exchanges not in the log`);
      const r = log(ex.dsb, 'verify');
      assert.equal(r.status, 0, r.stdout);
    });
  });
}

describe('sealing overdue (sqlite)', () => {
  let ex;

  before(async () => {
    ex = await startExchange({ backend: 'sqlite', tag: 'exlog_overdue', gatewayConf: 'timestamp_grace_s = 2\n' });
  });
  after(async () => { if (ex) await ex.stop(); });

  test('the TSA down past the grace period stops new exchanges until a seal succeeds', async () => {
    let r = await ex.call(`${PERSONS}/persons/1`);
    assert.equal(r.status, 200, r.text);
    await waitSealed(ex.dsb);
    await ex.central.stop(); // the TSA goes with it
    r = await ex.call(`${PERSONS}/persons/2`);
    assert.equal(r.status, 200, r.text);
    await until('exchanges refused', async () => (await ex.call(`${PERSONS}/persons/3`)).status === 503);
    r = await ex.call(`${PERSONS}/persons/4`);
    assert.equal(r.status, 503);
    assert.equal(r.json.code, 'exchange.timestamping_overdue');
    await ex.central.start();
    await until('exchanges accepted again', async () => (await ex.call(`${PERSONS}/persons/5`)).status === 200);
    const out = await waitSealed(ex.dsb);
    assert.match(out, /^OK$/m);
  });
});
