// Mail delivery end to end: egov's outbox thread sends over SMTP to the
// mail catcher (tests/lib/mailcatcher.mjs). A registration mails a
// verification link that works; a server that is down is retried until it
// answers; a 5xx refusal fails the message at once; a lasting 4xx fails it
// after mail.max_attempts; the outbox rows record all of it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { backends, freePort, startEgov } from '../lib/egov.mjs';
import { startMailcatcher } from '../lib/mailcatcher.mjs';
import { assertConforms } from './lib/openapi.mjs';

const PW = 'correct horse battery staple 42';

// Holds a fetch answer, whose body was read as text, to docs/api/openapi.json.
function conforms(method, path, res, text) {
  let json;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  assertConforms(method, path, { status: res.status, headers: res.headers, text, json });
}

const mailConfig = (port, { maxAttempts = 3, extra = '' } = {}) => `[mail]
smtp_host = 127.0.0.1
smtp_port = ${port}
from = "澳門政府 egov <no-reply@egov.test>"
starttls = off
poll_ms = 50
retry_ms = 200
max_attempts = ${maxAttempts}
timeout_s = 5
${extra}`;

async function register(node, email, locale = 'pt') {
  const r = await fetch(`${node.url}/api/v1/identity/register`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, name: 'Ana Lei', password: PW, locale }),
  });
  const text = await r.text();
  assert.equal(r.status, 201, text);
  conforms('POST', '/api/v1/identity/register', r, text);
}

// The outbox row for an address (SQLite, or PostgreSQL through psql).
function outboxRow(node, email) {
  const sql = `SELECT attempts, sent_at IS NOT NULL, failed_at IS NOT NULL, coalesce(last_error, '') FROM notify_outbox WHERE to_addr = '${email}'`;
  const r = node.database.startsWith('sqlite:')
    ? spawnSync('sqlite3', ['-separator', '|', node.database.slice(7), sql], { encoding: 'utf8' })
    : spawnSync('psql', [node.database, '-At', '-F', '|', '-c', sql.replace(/IS NOT NULL/g, 'IS NOT NULL')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const [attempts, sent, failed, error] = r.stdout.trim().split('|');
  const yes = (v) => v === '1' || v === 't';
  return { attempts: Number(attempts), sent: yes(sent), failed: yes(failed), error };
}

async function until(fn, ms = 8000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const backend of backends()) {
  describe(`mail delivery (${backend})`, () => {
    let mc;
    let node;
    before(async () => {
      mc = await startMailcatcher();
      node = await startEgov({ backend, config: mailConfig(mc.port) });
    });
    after(async () => { await node?.stop(); await mc?.stop(); });

    test('registration mails a verification link that verifies the address', async () => {
      await register(node, 'ana@example.test', 'pt');
      const m = await mc.waitFor('ana@example.test');
      assert.equal(m.from, 'no-reply@egov.test');
      assert.deepEqual(m.to, ['ana@example.test']);
      for (const h of ['date', 'message-id', 'mime-version', 'content-type', 'from', 'to', 'subject']) {
        assert.ok(m.headers[h], `header ${h}`);
      }
      assert.match(m.rawHeaders['content-type'], /^text\/plain; charset=utf-8$/i);
      assert.match(m.headers['message-id'], /^<[^@\s]+@egov\.test>$/);
      assert.ok(!Number.isNaN(Date.parse(m.headers.date)), 'Date parses');
      // The sender's non-ASCII display name is an RFC 2047 encoded-word.
      assert.match(m.rawHeaders.from, /^=\?UTF-8\?B\?.+\?= <no-reply@egov\.test>$/);
      assert.match(m.headers.from, /澳門政府 egov/);
      assert.ok(m.subject.length > 0);
      // Every raw line is CRLF-terminated and short.
      for (const line of m.raw.split('\r\n')) assert.ok(line.length <= 998 && !line.includes('\n'));
      const link = /(\S*[?&]token=([A-Za-z0-9_-]+))/.exec(m.text);
      assert.ok(link, `a link with a token in: ${m.text}`);
      const v = await fetch(`${node.url}/api/v1/identity/verify-email`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: link[2] }),
      });
      const vText = await v.text();
      assert.equal(v.status, 204, vText);
      conforms('POST', '/api/v1/identity/verify-email', v, vText);
      const login = await fetch(`${node.url}/api/v1/identity/login`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email: 'ana@example.test', password: PW }),
      });
      const loginText = await login.text();
      assert.equal(login.status, 200, loginText);
      conforms('POST', '/api/v1/identity/login', login, loginText);
      const row = await until(() => { const x = outboxRow(node, 'ana@example.test'); return x.sent && x; });
      assert.deepEqual([row.attempts, row.sent, row.failed], [1, true, false]);
    });

    test('a password reset request mails a reset link, in the account language', async () => {
      await register(node, 'bo@example.test', 'en');
      await mc.waitFor('bo@example.test');
      const r = await fetch(`${node.url}/api/v1/identity/password/reset`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email: 'bo@example.test' }),
      });
      assert.equal(r.status, 202);
      conforms('POST', '/api/v1/identity/password/reset', r, await r.text());
      const m = await until(() => mc.to('bo@example.test')[1]);
      assert.match(m.text, /[?&]token=[A-Za-z0-9_-]+/);
      assert.notEqual(m.headers['message-id'], mc.to('bo@example.test')[0].headers['message-id']);
    });

    test('a 5xx refusal of the recipient fails the message at once', async () => {
      mc.failNext('rcpt', 550, '5.1.1 no such mailbox');
      await register(node, 'gone@example.test');
      const row = await until(() => { const x = outboxRow(node, 'gone@example.test'); return x.failed && x; });
      assert.equal(row.attempts, 1);
      assert.equal(row.sent, false);
      assert.match(row.error, /550/);
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(mc.commands.filter((c) => c.includes('gone@example.test')).length, 1, 'not tried again');
    });

    test('a lasting 4xx is retried with back-off and failed after max_attempts', async () => {
      mc.failNext('rcpt', 451, '4.3.0 try later', 3);
      const t0 = Date.now();
      await register(node, 'busy@example.test');
      const row = await until(() => { const x = outboxRow(node, 'busy@example.test'); return x.failed && x; });
      assert.equal(row.attempts, 3);
      assert.match(row.error, /451/);
      // 200 ms then 400 ms of back-off between the three attempts.
      assert.ok(Date.now() - t0 >= 550, `took ${Date.now() - t0} ms`);
      assert.equal(mc.to('busy@example.test').length, 0);
    });
  });
}

describe('mail delivery when the SMTP server is down', () => {
  test('the message waits and is delivered once the server answers', async () => {
    const port = await freePort();
    const node = await startEgov({ config: mailConfig(port, { maxAttempts: 10 }) });
    let mc;
    try {
      await register(node, 'late@example.test');
      // An attempt is counted when it starts and its error written when it
      // ends: wait for both.
      const row = await until(() => { const x = outboxRow(node, 'late@example.test'); return x.attempts >= 1 && x.error && x; });
      assert.equal(row.sent, false);
      assert.equal(row.failed, false);
      assert.match(row.error, /connect/i);
      mc = await startMailcatcher({ port });
      const m = await mc.waitFor('late@example.test', { timeoutMs: 15000 });
      assert.match(m.text, /token=/);
      // The row is marked just after the server's 250.
      const done = await until(() => { const x = outboxRow(node, 'late@example.test'); return x.sent && x; });
      assert.ok(done.attempts >= 2, `attempts ${done.attempts}`);
    } finally {
      await node.stop();
      await mc?.stop();
    }
  });

  test('SMTP AUTH PLAIN is used when mail.user is set', async () => {
    const mc = await startMailcatcher({ user: 'egov', password: 's3cret' });
    const node = await startEgov({ config: mailConfig(mc.port, { extra: 'user = egov\npassword = s3cret\n' }) });
    try {
      await register(node, 'auth@example.test');
      await mc.waitFor('auth@example.test');
      assert.ok(mc.commands.some((c) => c.startsWith('AUTH PLAIN ')));
    } finally {
      await node.stop();
      await mc.stop();
    }
  });
});
