// The identity API: registration with e-mail verification (the token read
// from notify_outbox), login, me, sessions, logout, CSRF, brute-force
// throttling, and admission control under a login flood (429 with
// Retry-After in seconds and Retry-After-Ms).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { backends, startEgov } from '../lib/egov.mjs';
import { assertConforms } from './lib/openapi.mjs';

function sql(node, backend, query) {
  const r = backend === 'postgres'
    ? spawnSync('psql', [process.env.EGOV_TEST_PG_URL, '-At', '-c', query], { encoding: 'utf8' })
    : spawnSync('sqlite3', [`${node.dataDir}/egov.db`, query], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

async function call(node, path, { method = 'GET', body, cookie, csrf, headers = {} } = {}) {
  const h = { ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (cookie) h.Cookie = cookie;
  if (csrf) h['X-CSRF-Token'] = csrf;
  const r = await fetch(`${node.url}/api/v1/identity${path}`, {
    method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  const set = r.headers.get('set-cookie');
  return { status: r.status, json, text, headers: r.headers, cookie: set ? set.split(';')[0] : null, setCookie: set };
}

// Holds an answer to docs/api/openapi.json (path relative to /api/v1/identity).
const conforms = (method, path, r) => assertConforms(method, `/api/v1/identity${path}`, r);

const PW = 'violet-harbour-lantern';

for (const backend of backends()) {
  describe(`identity (${backend})`, () => {
    let node;
    before(async () => {
      node = await startEgov({ backend, demo: false, env: { EGOV_SERVER_THREADS: '24' } });
    });
    after(async () => { await node?.stop(); });

    async function registerVerified(email) {
      const r = await call(node, '/register', { method: 'POST', body: { email, name: 'Ana Lei', password: PW, locale: 'pt' } });
      assert.equal(r.status, 201, r.text);
      conforms('POST', '/register', r);
      const body = sql(node, backend,
        `SELECT body FROM notify_outbox WHERE to_addr = '${email}' AND template = 'verify_email' ORDER BY created_at DESC LIMIT 1`);
      const token = /token=([A-Za-z0-9_-]{43})/.exec(body)[1];
      const v = await call(node, '/verify-email', { method: 'POST', body: { token } });
      assert.equal(v.status, 204, v.text);
      conforms('POST', '/verify-email', v);
      return { account: r.json, token };
    }

    async function login(email, password = PW) {
      return call(node, '/login', { method: 'POST', body: { email, password } });
    }

    test('register, verify, login, me, sessions, logout', async () => {
      const { account, token } = await registerVerified('ana@example.mo');
      assert.equal(account.email, 'ana@example.mo');
      assert.equal(account.email_verified, false);
      assert.equal(account.kind, 'resident');
      // The token is single-use.
      const again = await call(node, '/verify-email', { method: 'POST', body: { token } });
      assert.equal(again.status, 400);
      assert.equal(again.json.code, 'identity.token_invalid');
      conforms('POST', '/verify-email', again);

      const l = await login('ANA@example.mo');
      assert.equal(l.status, 200, l.text);
      conforms('POST', '/login', l);
      assert.match(l.setCookie, /^egov_sid=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=86400/);
      assert.equal(l.json.session.acr, 1);
      assert.ok(l.json.csrf.length === 43);

      const me = await call(node, '/me', { cookie: l.cookie });
      assert.equal(me.status, 200, me.text);
      conforms('GET', '/me', me);
      assert.equal(me.json.account.email, 'ana@example.mo');
      assert.equal(me.json.account.email_verified, true);
      assert.equal(me.json.csrf, l.json.csrf);

      const l2 = await login('ana@example.mo');
      const list = await call(node, '/sessions', { cookie: l.cookie });
      assert.equal(list.status, 200);
      conforms('GET', '/sessions', list);
      assert.equal(list.json.items.length, 2);
      assert.equal(list.json.items.filter((s) => s.current).length, 1);
      const other = list.json.items.find((s) => !s.current);
      const del = await call(node, `/sessions/${other.id}`, { method: 'DELETE', cookie: l.cookie, csrf: l.json.csrf });
      assert.equal(del.status, 204, del.text);
      conforms('DELETE', `/sessions/${other.id}`, del);
      const gone = await call(node, '/me', { cookie: l2.cookie });
      assert.equal(gone.status, 401);
      conforms('GET', '/me', gone);

      const out = await call(node, '/logout', { method: 'POST', cookie: l.cookie, csrf: l.json.csrf });
      assert.equal(out.status, 204, out.text);
      conforms('POST', '/logout', out);
      assert.match(out.setCookie, /Max-Age=0/);
      assert.equal((await call(node, '/me', { cookie: l.cookie })).status, 401);
      // Recorded in the audit log.
      const actions = sql(node, backend, "SELECT action FROM audit_log WHERE action LIKE 'identity.%' ORDER BY seq");
      for (const a of ['identity.register', 'identity.email_verified', 'identity.login', 'identity.session_revoke', 'identity.logout'])
        assert.ok(actions.split('\n').includes(a), `${a} in ${actions}`);
    });

    test('an unverified resident cannot log in; weak and taken registrations are refused', async () => {
      const r = await call(node, '/register', { method: 'POST', body: { email: 'new@example.mo', name: 'N', password: PW } });
      assert.equal(r.status, 201);
      const l = await login('new@example.mo');
      assert.equal(l.status, 403);
      assert.equal(l.json.code, 'identity.email_unverified');
      conforms('POST', '/login', l);
      const taken = await call(node, '/register', { method: 'POST', body: { email: 'NEW@example.mo', name: 'N', password: PW } });
      assert.equal(taken.status, 409);
      assert.equal(taken.json.code, 'identity.email_taken');
      conforms('POST', '/register', taken);
      for (const [password, code] of [['short', 'identity.password_too_short'], ['x'.repeat(129), 'identity.password_too_long'],
        ['password123', 'identity.password_common']]) {
        const w = await call(node, '/register', { method: 'POST', body: { email: 'w@example.mo', name: 'W', password } });
        assert.equal(w.status, 400, password);
        assert.equal(w.json.code, code);
        assert.equal(w.json.field, 'password');
        conforms('POST', '/register', w);
        assert.ok(w.json.title && w.json.title !== `problem.${code}`, 'title from the catalogue');
      }
    });

    test('wrong password and unknown e-mail get the same answer', async () => {
      await registerVerified('bea@example.mo');
      const a = await login('bea@example.mo', 'not-her-password');
      const b = await login('nobody@example.mo', 'not-her-password');
      assert.equal(a.status, 401);
      assert.equal(b.status, 401);
      assert.equal(a.json.code, 'identity.bad_credentials');
      assert.equal(b.json.code, 'identity.bad_credentials');
      assert.equal(a.json.title, b.json.title);
      conforms('POST', '/login', a);
      conforms('POST', '/login', b);
    });

    test('state-changing calls without the CSRF token are refused', async () => {
      await registerVerified('cat@example.mo');
      const l = await login('cat@example.mo');
      const r = await call(node, '/sessions/revoke-all', { method: 'POST', cookie: l.cookie });
      assert.equal(r.status, 403);
      assert.equal(r.json.code, 'identity.csrf');
      conforms('POST', '/sessions/revoke-all', r);
      const bad = await call(node, '/logout', { method: 'POST', cookie: l.cookie, csrf: 'x'.repeat(43) });
      assert.equal(bad.status, 403);
      assert.equal(bad.json.code, 'identity.csrf');
      const ok = await call(node, '/sessions/revoke-all', { method: 'POST', cookie: l.cookie, csrf: l.json.csrf });
      assert.equal(ok.status, 200);
      assert.equal(ok.json.revoked, 0);
      conforms('POST', '/sessions/revoke-all', ok);
    });

    test('repeated failures are throttled with Retry-After', async () => {
      await registerVerified('dan@example.mo');
      for (let i = 0; i < 5; i++)
        assert.equal((await login('dan@example.mo', 'wrong-password')).status, 401);
      const r = await login('dan@example.mo');
      assert.equal(r.status, 429, r.text);
      assert.equal(r.json.code, 'identity.throttled');
      conforms('POST', '/login', r);
      assert.ok(r.json.retry_after_ms >= 1 && r.json.retry_after_ms <= 1000);
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal(Number(r.headers.get('retry-after-ms')), r.json.retry_after_ms);
      await new Promise((res) => setTimeout(res, r.json.retry_after_ms + 50));
      assert.equal((await login('dan@example.mo')).status, 200);
    });

    test('password reset: always 202, the link sets a new password and ends sessions', async () => {
      await registerVerified('eve@example.mo');
      const l = await login('eve@example.mo');
      const ghost = await call(node, '/password/reset', { method: 'POST', body: { email: 'ghost@example.mo' } });
      assert.equal(ghost.status, 202);
      conforms('POST', '/password/reset', ghost);
      assert.equal((await call(node, '/password/reset', { method: 'POST', body: { email: 'eve@example.mo' } })).status, 202);
      const body = sql(node, backend,
        "SELECT body FROM notify_outbox WHERE to_addr = 'eve@example.mo' AND template = 'reset_password'");
      const token = /token=([A-Za-z0-9_-]{43})/.exec(body)[1];
      const c = await call(node, '/password/reset/confirm', { method: 'POST', body: { token, password: 'amber-quartz-meadow' } });
      assert.equal(c.status, 204, c.text);
      conforms('POST', '/password/reset/confirm', c);
      assert.equal((await call(node, '/me', { cookie: l.cookie })).status, 401);
      assert.equal((await login('eve@example.mo')).status, 401);
      assert.equal((await login('eve@example.mo', 'amber-quartz-meadow')).status, 200);
    });

    // The flood is made truly simultaneous: 48 connections are opened first,
    // then every request is written in the same tick, so the hashing slots
    // and queue (2 x cores) overflow whatever the client machine's load.
    test('a login flood gets 429 with Retry-After from admission control', async () => {
      await registerVerified('flo@example.mo');
      const body = JSON.stringify({ email: 'flo@example.mo', password: PW });
      const reqText = `POST /api/v1/identity/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n`
        + `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
      const socks = await Promise.all(Array.from({ length: 48 }, () => new Promise((resolve, reject) => {
        const s = net.connect(node.port, '127.0.0.1', () => resolve(s));
        s.on('error', reject);
      })));
      const answers = socks.map((s) => new Promise((resolve) => {
        let data = '';
        s.setEncoding('utf8');
        s.on('data', (d) => { data += d; });
        s.on('close', () => resolve(data));
        s.on('error', () => resolve(data));
      }));
      for (const s of socks) s.write(reqText);
      const texts = await Promise.all(answers);
      const rs = texts.map((t) => {
        const [head, ...rest] = t.split('\r\n\r\n');
        const lines = head.split('\r\n');
        const status = Number(lines[0].split(' ')[1]);
        const headers = new Headers();
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          if (i > 0) headers.append(l.slice(0, i).trim(), l.slice(i + 1).trim());
        }
        const text = rest.join('\r\n\r\n');
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        return { status, headers, text, json };
      });
      const busy = rs.filter((r) => r.status === 429);
      assert.ok(rs.some((r) => r.status === 200), 'some got through');
      assert.ok(busy.length > 0, `statuses: ${rs.map((r) => r.status).join(',')}`);
      for (const r of busy) {
        assert.equal(r.json.code, 'identity.busy');
        assert.ok(Number(r.headers.get('retry-after')) >= 1);
        assert.ok(Number(r.headers.get('retry-after-ms')) >= 1);
        assert.equal(r.headers.get('content-type'), 'application/problem+json');
        conforms('POST', '/login', r);
      }

      // Places taken by requests that end without a hash come back: a body
      // that is not JSON, a missing password.
      for (const b of ['{"email":', JSON.stringify({ email: 'flo@example.mo' })]) {
        const r = await fetch(`${node.url}/api/v1/identity/login`, {
          method: 'POST', headers: { 'Content-Type': 'application/json' }, body: b,
        });
        assert.equal(r.status, 400, await r.text());
      }

      // The flood shows on /metrics: slots, admitted and refused hashes; and,
      // outside AddressSanitizer (which keeps libsodium's own mappings), every
      // admitted hash ran in a slot's kept memory.
      const m = await (await fetch(`${node.url}/metrics`)).text();
      const val = (re) => {
        const x = re.exec(m);
        assert.ok(x, `${re} on /metrics`);
        return Number(x[1]);
      };
      const admitted = val(/^egov_identity_hashes_total\{result="admitted"\} (\d+)$/m);
      const rejected = val(/^egov_identity_hashes_total\{result="rejected"\} (\d+)$/m);
      const kept = val(/^egov_identity_hashes_total\{result="kept_memory"\} (\d+)$/m);
      assert.ok(admitted >= rs.filter((r) => r.status === 200).length, `admitted ${admitted}`);
      assert.ok(rejected >= busy.length, `rejected ${rejected} < ${busy.length}`);
      if (process.env.EGOV_TEST_SANITIZER) assert.equal(kept, 0);
      else assert.equal(kept, admitted);
      assert.ok(val(/^egov_identity_hash_slots\{state="total"\} (\d+)$/m) >= 1);
      // Nothing is left holding a slot or a place in the queue.
      assert.equal(val(/^egov_identity_hash_slots\{state="running"\} (\d+)$/m), 0);
      assert.equal(val(/^egov_identity_hash_queue\{state="waiting"\} (\d+)$/m), 0);
      assert.ok(val(/^egov_identity_hash_seconds ([0-9.]+)$/m) > 0);
    });
  });
}
