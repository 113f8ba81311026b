// Crash safety of audited writes. A node under concurrent audited writes
// (notices published by a staff account, resident registrations, which mail
// a verification link, and OIDC client registrations) is killed with SIGKILL
// at random moments and restarted, for a bounded number of cycles. After the
// last restart:
//   - every write that was acknowledged (201) is there: none lost;
//   - every notice, every registered account and every OIDC client has its
//     audit record, including those whose request was killed before its
//     answer: a change and its audit record commit together or not at all;
//   - the audit chain verifies (`egov audit verify`);
//   - no mail, queued or sent, is for a registration without an audit record.
//
// Runs alone: EGOV_BIN=build/egov node --test tests/api/crash.test.mjs
// (EGOV_TEST_PG_URL adds PostgreSQL). EGOV_TEST_CRASH_CYCLES sets the number
// of kills per backend (default 12), EGOV_TEST_CRASH_SEED the random seed
// (printed in every failure, to replay the same kill times).
// scripts/test.sh runs it only when EGOV_TEST_CRASH=1 (docs/testing.md).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backends, run } from '../lib/egov.mjs';
import { startMailcatcher } from '../lib/mailcatcher.mjs';
import { adminConfig, auth, dbExec, request, start, stopClean } from './lib/http.mjs';

const CYCLES = Number(process.env.EGOV_TEST_CRASH_CYCLES || 12);
const SEED = Number(process.env.EGOV_TEST_CRASH_SEED || Date.now() % 1000000);
// Stop cycling once a backend has used this much, however many cycles are left.
const BUDGET_MS = 45000;
const EDITOR = { email: 'editor@crash.test', password: 'a long pass phrase for the crash test 7' };
const RESIDENT_PW = 'another long pass phrase for residents 9';
const REDIRECT = 'https://app.example.test/cb';

// mulberry32: a small seeded generator, so a failing run can be replayed.
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const mailConfig = (port) => adminConfig(`[mail]\nsmtp_host = 127.0.0.1\nsmtp_port = ${port}\n`
  + 'starttls = off\npoll_ms = 50\nretry_ms = 200\n');

const notice = (i) => ({
  category: 'news',
  title: { 'zh-Hant': `通告 ${i}`, pt: `Aviso ${i}`, en: `Notice ${i}` },
  body: { 'zh-Hant': '內容', pt: 'Texto', en: 'Text' },
});

// Every audit record as "action object", paged through the API.
async function auditKeys(node) {
  const keys = new Set();
  let after = 0;
  for (;;) {
    const r = await request(node, `/api/v1/audit?after=${after}&limit=1000`, { headers: auth });
    assert.equal(r.status, 200, r.text);
    for (const rec of r.json.items) keys.add(`${rec.action} ${rec.object}`);
    if (r.json.next_after === null) return keys;
    after = r.json.next_after;
  }
}

const rows = (node, sql) => dbExec(node, sql).split('\n').filter((l) => l.length > 0);

for (const backend of backends()) {
  const name = `audited writes killed at random moments: nothing lost, nothing unaudited (${backend})`;
  test(name, { timeout: 120000 }, async (t) => {
    const rnd = random(SEED);
    const mc = await startMailcatcher();
    const node = await start(backend, 'crash', { demo: false, config: mailConfig(mc.port) });
    const acked = { notices: new Set(), accounts: new Map(), clients: new Set() };
    const unexpected = [];
    let cycles = 0;
    let writes = 0;
    try {
      const cli = (args, input) => {
        const r = run([...args, '--data', node.dataDir, '--database', node.database], input ? { input } : {});
        assert.equal(r.status, 0, `egov ${args.join(' ')}: ${r.stderr}`);
      };
      cli(['dept', 'add', '--code', 'GOV', '--name', 'Government']);
      cli(['user', 'add', '--email', EDITOR.email, '--name', 'Editor', '--kind', 'staff', '--password-stdin'], `${EDITOR.password}\n`);
      cli(['role', 'grant', '--email', EDITOR.email, '--role', 'notice_editor', '--dept', 'GOV']);

      const t0 = Date.now();
      while (cycles < CYCLES && Date.now() - t0 < BUDGET_MS) {
        if (cycles > 0) await node.restart();
        const login = await request(node, '/api/v1/identity/login', { method: 'POST', json: EDITOR });
        assert.equal(login.status, 200, login.text);
        const staff = { Cookie: login.headers.get('set-cookie').split(';')[0], 'X-CSRF-Token': login.json.csrf };
        let dead = false;
        // One writer: repeats write() until the node is gone. A 201 is an
        // acknowledged write; 429 (password hashing busy) waits and retries.
        const writer = async (write) => {
          while (!dead) {
            let r;
            try {
              r = await write();
            } catch {
              return; // the node was killed under the request
            }
            if (r.status === 201) writes++;
            else if (r.status === 429) await sleep(50);
            else unexpected.push(`${r.status} ${r.text.slice(0, 200)}`);
          }
        };
        let n = 0;
        const post = (p, headers, json) => request(node, p, { method: 'POST', headers, json });
        const workers = [
          ...Array.from({ length: 8 }, () => writer(async () => {
            const r = await post('/api/v1/notices', staff, notice(n++));
            if (r.status === 201) acked.notices.add(r.json.id);
            return r;
          })),
          ...Array.from({ length: 3 }, () => writer(async () => {
            const email = `r${cycles}-${n++}@crash.test`;
            const r = await post('/api/v1/identity/register', {}, { email, name: 'Resident', password: RESIDENT_PW, locale: 'en' });
            if (r.status === 201) acked.accounts.set(r.json.id, email);
            return r;
          })),
          ...Array.from({ length: 3 }, () => writer(async () => {
            const r = await post('/api/v1/oidc/clients', auth, { name: `App ${n++}`, type: 'public', redirect_uris: [REDIRECT] });
            if (r.status === 201) acked.clients.add(r.json.client_id);
            return r;
          })),
        ];
        await sleep(150 + Math.floor(rnd() * 1000));
        await node.kill();
        dead = true;
        await Promise.all(workers);
        cycles++;
      }
      await node.restart();

      const keys = await auditKeys(node);
      const notices = rows(node, 'SELECT id FROM info_notice');
      const accounts = rows(node, "SELECT id || '|' || email FROM identity_account WHERE kind = 'resident'")
        .map((l) => l.split('|'));
      const clients = rows(node, 'SELECT client_id FROM oidc_client');
      const where = `seed ${SEED}, ${cycles} cycles, ${writes} acknowledged writes`;

      const lost = [
        ...[...acked.notices].filter((id) => !notices.includes(id)).map((id) => `notice ${id}`),
        ...[...acked.accounts.keys()].filter((id) => !accounts.some(([a]) => a === id)).map((id) => `account ${id}`),
        ...[...acked.clients].filter((id) => !clients.includes(id)).map((id) => `client ${id}`),
      ];
      const orphanNotices = notices.filter((id) => !keys.has(`info.notice.create notice:${id}`));
      const orphanAccounts = accounts.filter(([id]) => !keys.has(`identity.register account:${id}`));
      const orphanClients = clients.filter((id) => !keys.has(`oidc.client.create oidc_client:${id}`));
      const unaudited = new Set(orphanAccounts.map(([, email]) => email.toLowerCase()));
      const queued = rows(node, 'SELECT to_addr FROM notify_outbox').filter((a) => unaudited.has(a.toLowerCase()));
      const mailed = mc.messages.filter((m) => m.to.some((a) => unaudited.has(a)));
      t.diagnostic(`${backend}: ${where}; rows: ${notices.length} notices, ${accounts.length} accounts, `
        + `${clients.length} clients; without audit record: ${orphanNotices.length} notices, `
        + `${orphanAccounts.length} accounts, ${orphanClients.length} clients; mail for them: `
        + `${queued.length} queued, ${mailed.length} sent`);

      assert.deepEqual(unexpected, [], `answers other than 201 or 429 (${where})`);
      assert.ok(acked.notices.size > 0 && acked.accounts.size > 0 && acked.clients.size > 0,
        `every kind of write was acknowledged at least once (${where})`);
      assert.deepEqual(lost, [], `acknowledged writes lost (${where})`);
      const some = (list) => (list.length ? ` (${list.slice(0, 3).join(', ')}${list.length > 3 ? ', ...' : ''})` : '');
      assert.equal(orphanNotices.length + orphanAccounts.length + orphanClients.length, 0,
        `rows committed without their audit record: ${orphanNotices.length} of ${notices.length} notices`
        + `${some(orphanNotices)}, ${orphanAccounts.length} of ${accounts.length} accounts`
        + `${some(orphanAccounts.map(([id]) => id))}, ${orphanClients.length} of ${clients.length} clients`
        + `${some(orphanClients)} (${where})`);
      assert.equal(queued.length + mailed.length, 0, `mail for registrations without an audit record: `
        + `${queued.length} in the outbox${some(queued)}, ${mailed.length} sent (${where})`);
      const verify = run(['audit', 'verify', '--data', node.dataDir, '--database', node.database]);
      assert.equal(verify.status, 0, `egov audit verify (${where}): ${verify.stdout}${verify.stderr}`);
      await stopClean(node);
    } finally {
      await node.stop();
      await mc.stop();
    }
  });
}
