// Every audit record names who really acted: the account behind a session
// or behind an application's access token, the OIDC client for what a
// client does at the token endpoints, "operator" for the operator token
// only, "operator:cli" for the command line, "anonymous" for a caller
// nobody knows. One test per module that audits (identity, OIDC, PKI,
// notices), each acting through every kind of caller it accepts and
// reading the records back through the audit API.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { backends, run } from '../lib/egov.mjs';
import { adminConfig, auth, request, start, stopClean } from './lib/http.mjs';

const PASSWORD = 'a long pass phrase for the actor test 3';
const STAFF = 'staff@actors.test';
const REDIRECT = 'https://app.actors.test/cb';
const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };
const form = (o) => new URLSearchParams(o).toString();
const b64url = (buf) => Buffer.from(buf).toString('base64url');

const notice = (n) => ({
  category: 'news',
  title: { 'zh-Hant': `通告 ${n}`, pt: `Aviso ${n}`, en: `Notice ${n}` },
  body: { 'zh-Hant': '內容', pt: 'Texto', en: 'Text' },
});

for (const backend of backends()) {
  describe(`audit actors (${backend})`, () => {
    let node;
    let staff; // { id, cookie, csrf }
    let client; // a confidential client that may act with egov.api
    let bearer; // an access token of the staff member, scope egov.api

    const cli = (args, input) => {
      const r = run([...args, '--data', node.dataDir, '--database', node.database], input ? { input } : {});
      assert.equal(r.status, 0, `egov ${args.join(' ')}: ${r.stderr}`);
      return r.stdout.trim();
    };
    const asStaff = (method = 'GET') => ({
      Cookie: staff.cookie, ...(method === 'GET' ? {} : { 'X-CSRF-Token': staff.csrf }),
    });
    const asBearer = () => ({ Authorization: `Bearer ${bearer}` });

    // Every record as { seq, actor, action, object, details }, paged
    // through the audit API.
    async function records() {
      const out = [];
      let afterSeq = 0;
      for (;;) {
        const r = await request(node, `/api/v1/audit?after=${afterSeq}&limit=1000`, { headers: auth });
        assert.equal(r.status, 200, r.text);
        out.push(...r.json.items);
        if (r.json.next_after === null) return out;
        afterSeq = r.json.next_after;
      }
    }
    // The one record of action on object (the newest when there are more).
    async function recordOf(action, object) {
      const all = (await records()).filter((x) => x.action === action && x.object === object);
      assert.ok(all.length > 0, `an audit record ${action} ${object}`);
      return all[all.length - 1];
    }

    async function login(email) {
      const r = await request(node, '/api/v1/identity/login', { method: 'POST', json: { email, password: PASSWORD } });
      assert.equal(r.status, 200, r.text);
      return { id: r.json.account.id, cookie: r.headers.get('set-cookie').split(';')[0], csrf: r.json.csrf };
    }

    // The code flow for the staff member through client c; returns the
    // token answer.
    async function codeFlow(c, scope) {
      const verifier = b64url(randomBytes(32));
      const challenge = b64url(createHash('sha256').update(verifier).digest());
      let r = await request(node, `/oidc/authorize?${form({
        response_type: 'code', client_id: c.client_id, redirect_uri: REDIRECT, scope, state: 's', nonce: 'n',
        code_challenge: challenge, code_challenge_method: 'S256',
      })}`, { headers: { Cookie: staff.cookie } });
      if (r.status === 200) {
        const fields = Object.fromEntries([...r.text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)]
          .map((m) => [m[1], m[2].replace(/&amp;/g, '&')]));
        r = await request(node, '/oidc/authorize/consent', {
          method: 'POST', headers: { ...FORM, Cookie: staff.cookie }, body: form({ ...fields, decision: 'allow' }),
        });
      }
      assert.ok([302, 303].includes(r.status), `${r.status} ${r.text}`);
      const code = new URL(r.headers.get('location')).searchParams.get('code');
      const t = await request(node, '/oidc/token', {
        method: 'POST',
        headers: { ...FORM, Authorization: `Basic ${Buffer.from(`${c.client_id}:${c.client_secret}`).toString('base64')}` },
        body: form({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }),
      });
      assert.equal(t.status, 200, t.text);
      return t.json;
    }

    before(async () => {
      node = await start(backend, 'actors', { config: adminConfig(), demo: false });
      cli(['dept', 'add', '--code', 'GOV', '--name', 'Government']);
      cli(['user', 'add', '--email', STAFF, '--name', 'Staff Member', '--kind', 'staff', '--password-stdin'],
        `${PASSWORD}\n`);
      // admin in a root department holds every permission, the PKI's too.
      cli(['role', 'grant', '--email', STAFF, '--role', 'admin', '--dept', 'GOV']);
      staff = await login(STAFF);
      const r = await request(node, '/api/v1/oidc/clients', {
        method: 'POST', headers: auth,
        json: { name: 'Actor app', type: 'confidential', redirect_uris: [REDIRECT], scopes: ['openid', 'egov.api'] },
      });
      assert.equal(r.status, 201, r.text);
      client = r.json;
      bearer = (await codeFlow(client, 'openid egov.api')).access_token;
    });
    after(async () => { await stopClean(node); });

    test('identity: the account acts for itself, a stranger is anonymous, the CLI is operator:cli', async () => {
      const email = 'resident@actors.test';
      const reg = await request(node, '/api/v1/identity/register', {
        method: 'POST', json: { email, name: 'Resident', password: PASSWORD, locale: 'en' },
      });
      assert.equal(reg.status, 201, reg.text);
      const id = reg.json.id;
      assert.equal((await recordOf('identity.register', `account:${id}`)).actor, `account:${id}`);

      const bad = await request(node, '/api/v1/identity/login', { method: 'POST', json: { email: STAFF, password: 'wrong one' } });
      assert.equal(bad.status, 401);
      const failed = (await records()).filter((x) => x.action === 'identity.login_failed');
      assert.equal(failed[failed.length - 1].actor, 'anonymous');

      const other = await login(STAFF);
      const out = await request(node, '/api/v1/identity/logout', {
        method: 'POST', headers: { Cookie: other.cookie, 'X-CSRF-Token': other.csrf }, json: {},
      });
      assert.equal(out.status, 204, out.text);
      const logout = await recordOf('identity.logout', `account:${staff.id}`);
      assert.equal(logout.actor, `account:${staff.id}`);

      const added = cli(['user', 'add', '--email', 'clerk@actors.test', '--name', 'Clerk', '--kind', 'staff']);
      assert.equal((await recordOf('identity.user_add', `account:${added}`)).actor, 'operator:cli');
    });

    test('OIDC: clients registered by a session, a token or the operator name each', async () => {
      const mk = async (headers, name) => {
        const r = await request(node, '/api/v1/oidc/clients', {
          method: 'POST', headers, json: { name, type: 'public', redirect_uris: [REDIRECT] },
        });
        assert.equal(r.status, 201, r.text);
        return r.json;
      };
      const bySession = await mk(asStaff('POST'), 'By session');
      const byToken = await mk(asBearer(), 'By token');
      const byOperator = await mk(auth, 'By operator');
      assert.equal(bySession.created_by, `account:${staff.id}`);
      assert.equal(byToken.created_by, `account:${staff.id}`);
      assert.equal(byOperator.created_by, 'operator');
      for (const [c, actor] of [[bySession, `account:${staff.id}`], [byToken, `account:${staff.id}`], [byOperator, 'operator']]) {
        assert.equal((await recordOf('oidc.client.create', `oidc_client:${c.client_id}`)).actor, actor);
      }
      const del = await request(node, `/api/v1/oidc/clients/${bySession.client_id}`, { method: 'DELETE', headers: asBearer() });
      assert.equal(del.status, 204, del.text);
      assert.equal((await recordOf('oidc.client.delete', `oidc_client:${bySession.client_id}`)).actor, `account:${staff.id}`);

      // The flow: consent, code and tokens for the person; revoking a
      // refresh token is the client's act.
      const tokens = await codeFlow(client, 'openid');
      const object = `oidc_client:${client.client_id}`;
      for (const action of ['oidc.consent.grant', 'oidc.code.issue', 'oidc.token.issue']) {
        assert.equal((await recordOf(action, object)).actor, `account:${staff.id}`, action);
      }
      const rv = await request(node, '/oidc/revoke', {
        method: 'POST',
        headers: { ...FORM, Authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}` },
        body: form({ token: tokens.refresh_token }),
      });
      assert.equal(rv.status, 200, rv.text);
      const revoked = (await records()).filter((x) => x.action === 'oidc.token.revoke');
      assert.equal(revoked[revoked.length - 1].actor, object);
    });

    test('PKI: certificates issued and revoked through a session, a token or the operator name each', async () => {
      const issue = async (headers, owner) => {
        const r = await request(node, '/api/v1/certificates/pkcs12', {
          method: 'POST', headers,
          json: { profile: 'system_tls_client', owner, cn: owner, passphrase: 'a passphrase for it' },
        });
        assert.equal(r.status, 201, r.text);
        return r.headers.get('x-certificate-serial');
      };
      const cases = [[asStaff('POST'), `account:${staff.id}`], [asBearer(), `account:${staff.id}`], [auth, 'operator']];
      for (const [headers, actor] of cases) {
        const serial = await issue(headers, `system-${actor.length}-${Math.random().toString(36).slice(2, 8)}`);
        assert.equal((await recordOf('pki.cert.issue', `cert:${serial}`)).actor, actor);
        const rv = await request(node, `/api/v1/certificates/${serial}/revoke`, {
          method: 'POST', headers, json: { reason: 'superseded' },
        });
        assert.equal(rv.status, 200, rv.text);
        assert.equal((await recordOf('pki.cert.revoke', `cert:${serial}`)).actor, actor);
      }
      // A person's own certificate, from their session.
      const own = await request(node, '/api/v1/identity/me/certificates/pkcs12', {
        method: 'POST', headers: asStaff('POST'), json: { profile: 'person_auth', passphrase: 'a passphrase for it' },
      });
      assert.equal(own.status, 201, own.text);
      const serial = own.headers.get('x-certificate-serial');
      const rec = await recordOf('pki.cert.issue', `cert:${serial}`);
      assert.equal(rec.actor, `account:${staff.id}`);
      assert.equal(rec.details.via, 'pkcs12');
    });

    test('notices: published through a session, a token or the operator name each', async () => {
      const cases = [[asStaff('POST'), `account:${staff.id}`], [asBearer(), `account:${staff.id}`], [auth, 'operator']];
      for (const [headers, actor] of cases) {
        const r = await request(node, '/api/v1/notices', { method: 'POST', headers, json: notice(actor) });
        assert.equal(r.status, 201, r.text);
        assert.equal((await recordOf('info.notice.create', `notice:${r.json.id}`)).actor, actor);
      }
    });
  });
}
