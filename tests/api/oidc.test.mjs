// The OpenID Connect provider against a real node: discovery and JWKS,
// client registration by an admin, the code flow with PKCE and consent,
// ID-token signatures checked with node's crypto against the JWKS, refresh
// rotation and reuse detection, revocation, introspection, userinfo, and
// the bad inputs: wrong and replayed codes, PKCE mismatch, redirect-URI
// mismatch, unknown clients, tampered and malformed tokens, step-up.
import assert from 'node:assert/strict';
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { backends, run } from '../lib/egov.mjs';
import { adminConfig, auth, request, start, stopClean } from './lib/http.mjs';
import { assertConforms } from './lib/openapi.mjs';

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const REDIRECT = 'https://app.example.mo/callback';
const PASSWORD = 'correct horse battery staple 42';

function pkce() {
  const verifier = b64url(randomBytes(32));
  return { verifier, challenge: b64url(createHash('sha256').update(verifier).digest()) };
}

function decode(jwt) {
  const [h, p] = jwt.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

function verifyJwt(jwt, jwks) {
  const [h, p, s] = jwt.split('.');
  const { kid, alg } = JSON.parse(Buffer.from(h, 'base64url'));
  assert.equal(alg, 'ES256');
  const jwk = jwks.keys.find((k) => k.kid === kid);
  assert.ok(jwk, `kid ${kid} in the JWKS`);
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  return verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
}

const form = (o) => new URLSearchParams(o).toString();
const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };

for (const backend of backends()) {
  describe(`oidc (${backend})`, () => {
    let node;
    let pub; // public client
    let conf; // confidential client
    let cookie;
    let csrf;

    const post = (p, body, headers = {}) => request(node, p, { method: 'POST', headers: { ...FORM, ...headers }, body: form(body) });
    const basic = (c) => ({ Authorization: `Basic ${Buffer.from(`${c.client_id}:${c.client_secret}`).toString('base64')}` });
    const authorizeUrl = (c, over = {}) => `/oidc/authorize?${form({
      response_type: 'code', client_id: c.client_id, redirect_uri: REDIRECT, scope: 'openid email profile',
      state: 'st-123', nonce: 'n-456', ...over,
    })}`;
    const browse = (p, headers = {}) => request(node, p, { headers: { Cookie: cookie, ...headers } });

    // Runs authorize (consenting if asked) and returns the code.
    async function getCode(c, over = {}) {
      let r = await browse(authorizeUrl(c, over));
      if (r.status === 200) {
        assert.match(r.headers.get('content-type'), /text\/html/);
        assertConforms('GET', '/oidc/authorize', r);
        const fields = Object.fromEntries([...r.text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)]
          .map((m) => [m[1], m[2].replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>')]));
        assert.equal(fields.csrf, csrf);
        r = await request(node, '/oidc/authorize/consent', {
          method: 'POST', headers: { ...FORM, Cookie: cookie }, body: form({ ...fields, decision: 'allow' }),
        });
      }
      assert.ok([302, 303].includes(r.status), `${r.status} ${r.text}`);
      assertConforms(r.status === 303 ? 'POST' : 'GET', r.status === 303 ? '/oidc/authorize/consent' : '/oidc/authorize', r);
      const loc = new URL(r.headers.get('location'));
      assert.equal(`${loc.origin}${loc.pathname}`, REDIRECT);
      assert.equal(loc.searchParams.get('state'), over.state ?? 'st-123');
      assert.ok(loc.searchParams.get('code'), `code in ${loc}`);
      return loc.searchParams.get('code');
    }

    before(async () => {
      node = await start(backend, 'oidc', { config: adminConfig() });
      const add = run(['user', 'add', '--email', 'ana@example.mo', '--name', 'Ana Lei', '--kind', 'resident',
        '--password-stdin', '--data', node.dataDir, '--database', node.database], { input: `${PASSWORD}\n` });
      assert.equal(add.status, 0, add.stderr);
      const login = await request(node, '/api/v1/identity/login', { method: 'POST', json: { email: 'ana@example.mo', password: PASSWORD } });
      assert.equal(login.status, 200, login.text);
      cookie = login.headers.get('set-cookie').split(';')[0];
      csrf = login.json.csrf;
      const mk = async (type, scopes) => {
        const r = await request(node, '/api/v1/oidc/clients', {
          method: 'POST', headers: auth, json: { name: `App ${type}`, type, redirect_uris: [REDIRECT], scopes },
        });
        assert.equal(r.status, 201, r.text);
        assertConforms('POST', '/api/v1/oidc/clients', r);
        return r.json;
      };
      pub = await mk('public', ['openid', 'email', 'profile']);
      conf = await mk('confidential', ['openid', 'email', 'profile', 'egov.api']);
    });
    after(async () => { await stopClean(node); });

    test('discovery and JWKS', async () => {
      const d = await request(node, '/.well-known/openid-configuration');
      assert.equal(d.status, 200);
      assertConforms('GET', '/.well-known/openid-configuration', d);
      assert.ok(d.json.issuer);
      assert.equal(d.json.authorization_endpoint, `${d.json.issuer}/oidc/authorize`);
      assert.deepEqual(d.json.code_challenge_methods_supported, ['S256']);
      assert.deepEqual(d.json.id_token_signing_alg_values_supported, ['ES256']);
      for (const p of ['/oidc/jwks', '/.well-known/jwks.json']) {
        const j = await request(node, p);
        assert.equal(j.status, 200);
        assertConforms('GET', p, j);
        assert.ok(j.json.keys.length >= 1);
        for (const k of j.json.keys) {
          assert.equal(k.kty, 'EC');
          assert.equal(k.crv, 'P-256');
          assert.equal(k.d, undefined, 'no private part');
        }
      }
    });

    test('client admin: secret shown once, list, get, auth required', async () => {
      assert.equal(pub.client_secret, undefined);
      assert.equal(conf.client_secret.length, 43);
      const g = await request(node, `/api/v1/oidc/clients/${conf.client_id}`, { headers: auth });
      assert.equal(g.status, 200);
      assertConforms('GET', `/api/v1/oidc/clients/${conf.client_id}`, g);
      assert.equal(g.json.client_secret, undefined);
      const l = await request(node, '/api/v1/oidc/clients', { headers: auth });
      assertConforms('GET', '/api/v1/oidc/clients', l);
      assert.ok(l.json.items.some((c) => c.client_id === pub.client_id));
      const anon = await request(node, '/api/v1/oidc/clients');
      assert.equal(anon.status, 401);
      assertConforms('GET', '/api/v1/oidc/clients', anon);
      const bad = await request(node, '/api/v1/oidc/clients', {
        method: 'POST', headers: auth, json: { name: 'x', type: 'public', redirect_uris: ['http://evil.example/cb'] },
      });
      assert.equal(bad.status, 400);
      assertConforms('POST', '/api/v1/oidc/clients', bad);
      const frag = await request(node, '/api/v1/oidc/clients', {
        method: 'POST', headers: auth, json: { name: 'x', type: 'public', redirect_uris: ['https://a.example/cb#x'] },
      });
      assert.equal(frag.status, 400);
      assertConforms('POST', '/api/v1/oidc/clients', frag);
      const tmp = await request(node, '/api/v1/oidc/clients', {
        method: 'POST', headers: auth, json: { name: 'Short-lived', type: 'public', redirect_uris: [REDIRECT] },
      });
      assert.equal(tmp.status, 201, tmp.text);
      const del = await request(node, `/api/v1/oidc/clients/${tmp.json.client_id}`, { method: 'DELETE', headers: auth });
      assert.equal(del.status, 204, del.text);
      assertConforms('DELETE', `/api/v1/oidc/clients/${tmp.json.client_id}`, del);
      const del2 = await request(node, `/api/v1/oidc/clients/${tmp.json.client_id}`, { method: 'DELETE', headers: auth });
      assert.equal(del2.status, 404);
      assertConforms('DELETE', `/api/v1/oidc/clients/${tmp.json.client_id}`, del2);
    });

    test('code flow with PKCE for a public client, ID token verified against the JWKS', async () => {
      const { verifier, challenge } = pkce();
      const code = await getCode(pub, { code_challenge: challenge, code_challenge_method: 'S256' });
      const t = await post('/oidc/token', {
        grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: pub.client_id, code_verifier: verifier,
      });
      assert.equal(t.status, 200, t.text);
      assertConforms('POST', '/oidc/token', t);
      assert.equal(t.headers.get('cache-control'), 'no-store');
      assert.equal(t.json.token_type, 'Bearer');
      assert.ok(t.json.expires_in >= 60 && t.json.expires_in <= 600);
      const jwks = (await request(node, '/oidc/jwks')).json;
      assert.ok(verifyJwt(t.json.id_token, jwks), 'id_token signature');
      assert.ok(verifyJwt(t.json.access_token, jwks), 'access_token signature');
      const idt = decode(t.json.id_token);
      const disc = (await request(node, '/.well-known/openid-configuration')).json;
      assert.equal(idt.payload.iss, disc.issuer);
      assert.equal(idt.payload.aud, pub.client_id);
      assert.equal(idt.payload.nonce, 'n-456');
      assert.equal(idt.payload.acr, '1');
      assert.deepEqual(idt.payload.amr, ['pwd']);
      assert.ok(idt.payload.auth_time <= idt.payload.iat);
      const atHash = b64url(createHash('sha256').update(t.json.access_token).digest().subarray(0, 16));
      assert.equal(idt.payload.at_hash, atHash);
      assert.equal(decode(t.json.access_token).header.typ, 'at+jwt');

      // userinfo
      const u = await request(node, '/oidc/userinfo', { headers: { Authorization: `Bearer ${t.json.access_token}` } });
      assert.equal(u.status, 200, u.text);
      assertConforms('GET', '/oidc/userinfo', u);
      assert.equal(u.json.sub, idt.payload.sub);
      assert.equal(u.json.email, 'ana@example.mo');
      assert.equal(u.json.name, 'Ana Lei');

      // replayed code: invalid_grant, and the tokens from it die
      const again = await post('/oidc/token', {
        grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: pub.client_id, code_verifier: verifier,
      });
      assert.equal(again.status, 400);
      assert.equal(again.json.error, 'invalid_grant');
      assertConforms('POST', '/oidc/token', again);
      const u2 = await request(node, '/oidc/userinfo', { headers: { Authorization: `Bearer ${t.json.access_token}` } });
      assert.equal(u2.status, 401);
      assertConforms('GET', '/oidc/userinfo', u2);
      const rf = await post('/oidc/token', { grant_type: 'refresh_token', refresh_token: t.json.refresh_token, client_id: pub.client_id });
      assert.equal(rf.json.error, 'invalid_grant');
    });

    test('PKCE: required for public clients, plain refused, mismatch refused', async () => {
      const r1 = await browse(authorizeUrl(pub));
      assert.equal(r1.status, 302);
      assertConforms('GET', '/oidc/authorize', r1);
      assert.equal(new URL(r1.headers.get('location')).searchParams.get('error'), 'invalid_request');
      const { verifier, challenge } = pkce();
      const r2 = await browse(authorizeUrl(pub, { code_challenge: verifier, code_challenge_method: 'plain' }));
      assert.equal(new URL(r2.headers.get('location')).searchParams.get('error'), 'invalid_request');
      const code = await getCode(pub, { code_challenge: challenge, code_challenge_method: 'S256' });
      const t = await post('/oidc/token', {
        grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: pub.client_id, code_verifier: pkce().verifier,
      });
      assert.equal(t.status, 400);
      assert.equal(t.json.error, 'invalid_grant');
    });

    test('redirect-URI mismatch and unknown client are never redirected', async () => {
      for (const p of [
        authorizeUrl(pub, { redirect_uri: 'https://evil.example/cb' }),
        authorizeUrl(pub, { redirect_uri: `${REDIRECT}/` }),
        authorizeUrl({ client_id: 'no-such-client' }),
      ]) {
        const r = await browse(p);
        assert.equal(r.status, 400, p);
        assert.equal(r.headers.get('location'), null);
        assert.match(r.headers.get('content-type'), /problem\+json/);
        assertConforms('GET', '/oidc/authorize', r);
      }
    });

    test('confidential client: basic and post auth, wrong secret, wrong redirect at the token endpoint', async () => {
      const code = await getCode(conf);
      const wrong = await post('/oidc/token', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT },
        { Authorization: `Basic ${Buffer.from(`${conf.client_id}:nope`).toString('base64')}` });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.json.error, 'invalid_client');
      assert.ok(wrong.headers.get('www-authenticate'));
      assertConforms('POST', '/oidc/token', wrong);
      const mism = await post('/oidc/token', { grant_type: 'authorization_code', code, redirect_uri: `${REDIRECT}x` }, basic(conf));
      assert.equal(mism.json.error, 'invalid_grant');
      const code2 = await getCode(conf);
      const ok = await post('/oidc/token', {
        grant_type: 'authorization_code', code: code2, redirect_uri: REDIRECT, client_id: conf.client_id, client_secret: conf.client_secret,
      });
      assert.equal(ok.status, 200, ok.text);
      assertConforms('POST', '/oidc/token', ok);
      const unknown = await post('/oidc/token', { grant_type: 'authorization_code', code: 'x'.repeat(43), redirect_uri: REDIRECT }, basic(conf));
      assert.equal(unknown.json.error, 'invalid_grant');
      const noclient = await post('/oidc/token', { grant_type: 'authorization_code', code: code2, redirect_uri: REDIRECT, client_id: 'nobody' });
      assert.equal(noclient.status, 401);
      const gt = await post('/oidc/token', { grant_type: 'password' }, basic(conf));
      assert.equal(gt.json.error, 'unsupported_grant_type');
      assertConforms('POST', '/oidc/token', gt);
    });

    test('refresh rotation, narrowing, reuse revokes the family; revocation; introspection', async () => {
      const code = await getCode(conf);
      const t = await post('/oidc/token', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT }, basic(conf));
      assert.equal(t.status, 200, t.text);
      const r1 = await post('/oidc/token', { grant_type: 'refresh_token', refresh_token: t.json.refresh_token, scope: 'openid' }, basic(conf));
      assert.equal(r1.status, 200, r1.text);
      assert.notEqual(r1.json.refresh_token, t.json.refresh_token);
      assert.equal(r1.json.scope, 'openid');
      const wide = await post('/oidc/token', { grant_type: 'refresh_token', refresh_token: r1.json.refresh_token, scope: 'openid egov.admin' }, basic(conf));
      assert.equal(wide.json.error, 'invalid_scope');
      assertConforms('POST', '/oidc/token', wide);
      // another client's refresh token is refused without spending it (introR below: still active)
      const foreign = await post('/oidc/token', { grant_type: 'refresh_token', refresh_token: r1.json.refresh_token, client_id: pub.client_id });
      assert.equal(foreign.status, 400);
      assert.equal(foreign.json.error, 'invalid_grant');
      assert.match(foreign.json.error_description, /another client/);

      const intro = await post('/oidc/introspect', { token: r1.json.access_token }, basic(conf));
      assert.equal(intro.status, 200);
      assert.equal(intro.json.active, true);
      assert.equal(intro.json.client_id, conf.client_id);
      assertConforms('POST', '/oidc/introspect', intro);
      const introR = await post('/oidc/introspect', { token: r1.json.refresh_token }, basic(conf));
      assert.equal(introR.json.active, true);
      assertConforms('POST', '/oidc/introspect', introR);
      const introBad = await post('/oidc/introspect', { token: 'garbage.token.here' }, basic(conf));
      assert.deepEqual(introBad.json, { active: false });
      assertConforms('POST', '/oidc/introspect', introBad);
      const introAnon = await post('/oidc/introspect', { token: r1.json.access_token });
      assert.equal(introAnon.status, 401);
      assertConforms('POST', '/oidc/introspect', introAnon);

      // reuse of the first refresh token: family revoked, the live one dies too
      const reuse = await post('/oidc/token', { grant_type: 'refresh_token', refresh_token: t.json.refresh_token }, basic(conf));
      assert.equal(reuse.json.error, 'invalid_grant');
      const live = await post('/oidc/token', { grant_type: 'refresh_token', refresh_token: r1.json.refresh_token }, basic(conf));
      assert.equal(live.json.error, 'invalid_grant');
      const gone = await post('/oidc/introspect', { token: r1.json.access_token }, basic(conf));
      assert.equal(gone.json.active, false);

      // revocation: refresh token kills the family; access token is denylisted
      const t2 = await post('/oidc/token', { grant_type: 'authorization_code', code: await getCode(conf), redirect_uri: REDIRECT }, basic(conf));
      const rv = await post('/oidc/revoke', { token: t2.json.access_token }, basic(conf));
      assert.equal(rv.status, 200);
      assertConforms('POST', '/oidc/revoke', rv);
      assert.equal((await post('/oidc/introspect', { token: t2.json.access_token }, basic(conf))).json.active, false);
      assert.equal((await post('/oidc/introspect', { token: t2.json.refresh_token }, basic(conf))).json.active, true);
      assert.equal((await post('/oidc/revoke', { token: t2.json.refresh_token }, basic(conf))).status, 200);
      assert.equal((await post('/oidc/introspect', { token: t2.json.refresh_token }, basic(conf))).json.active, false);
      assert.equal((await post('/oidc/revoke', { token: 'unknown' }, basic(conf))).status, 200);
    });

    test('tampered, malformed and alg-confused tokens are refused', async () => {
      const t = await post('/oidc/token', { grant_type: 'authorization_code', code: await getCode(conf), redirect_uri: REDIRECT }, basic(conf));
      const [h, p, s] = t.json.access_token.split('.');
      const payload = JSON.parse(Buffer.from(p, 'base64url'));
      const evil = b64url(JSON.stringify({ ...payload, sub: 'someone-else' }));
      const none = b64url(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: decode(t.json.access_token).header.kid }));
      const hs = b64url(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: decode(t.json.access_token).header.kid }));
      const sigFlip = b64url(Buffer.from(s, 'base64url').map((b, i) => (i === 5 ? b ^ 1 : b)));
      const expired = b64url(JSON.stringify({ ...payload, exp: 1000000000 }));
      for (const bad of [
        `${h}.${evil}.${s}`, `${none}.${p}.`, `${hs}.${p}.${s}`, `${h}.${p}.${sigFlip}`, `${h}.${expired}.${s}`,
        `${h}.${p}`, `${h}.${p}.${s}.x`, `${h}=.${p}.${s}`, 'not-a-jwt', t.json.id_token,
      ]) {
        const u = await request(node, '/oidc/userinfo', { headers: { Authorization: `Bearer ${bad}` } });
        assert.equal(u.status, 401, bad);
        assert.match(u.headers.get('www-authenticate'), /Bearer/);
        assertConforms('GET', '/oidc/userinfo', u);
      }
      const ok = await request(node, '/oidc/userinfo', { headers: { Authorization: `Bearer ${t.json.access_token}` } });
      assert.equal(ok.status, 200);
    });

    test('prompt, max_age and acr_values step-up redirect to the login page', async () => {
      const noSession = await request(node, authorizeUrl(conf));
      assert.equal(noSession.status, 302);
      assert.match(noSession.headers.get('location'), /^\/login\?return=%2Foidc%2Fauthorize/);
      assertConforms('GET', '/oidc/authorize', noSession);
      const none = await request(node, authorizeUrl(conf, { prompt: 'none' }));
      assert.equal(new URL(none.headers.get('location')).searchParams.get('error'), 'login_required');
      const step = await browse(authorizeUrl(conf, { acr_values: '2' }));
      assert.equal(step.status, 302);
      const loc = step.headers.get('location');
      assert.match(loc, /^\/login\?return=/);
      assert.match(loc, /&acr=2$/);
      assert.match(decodeURIComponent(new URL(loc, node.url).searchParams.get('return')), /acr_values=2/);
      const login = await browse(authorizeUrl(conf, { prompt: 'login' }));
      assert.match(login.headers.get('location'), /^\/login\?return=/);
      const acrOk = await browse(authorizeUrl(conf, { acr_values: '1 2' }));
      assert.equal(new URL(acrOk.headers.get('location')).origin, new URL(REDIRECT).origin);
      const noOpenid = await browse(authorizeUrl(conf, { scope: 'email' }));
      assert.equal(new URL(noOpenid.headers.get('location')).searchParams.get('error'), 'invalid_scope');
      const tokenResp = await browse(authorizeUrl(conf, { response_type: 'token' }));
      assert.equal(new URL(tokenResp.headers.get('location')).searchParams.get('error'), 'unsupported_response_type');
    });

    test('consent: deny redirects with access_denied; the form needs the CSRF token', async () => {
      const r = await browse(authorizeUrl(pub, { ...pkceParams(), prompt: 'consent' }));
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, /App public/);
      const fields = Object.fromEntries([...r.text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [m[1], m[2]]));
      const noCsrf = await request(node, '/oidc/authorize/consent', {
        method: 'POST', headers: { ...FORM, Cookie: cookie }, body: form({ ...fields, csrf: 'wrong', decision: 'allow' }),
      });
      assert.equal(noCsrf.status, 403);
      assertConforms('POST', '/oidc/authorize/consent', noCsrf);
      const deny = await request(node, '/oidc/authorize/consent', {
        method: 'POST', headers: { ...FORM, Cookie: cookie }, body: form({ ...fields, decision: 'deny' }),
      });
      assert.equal(deny.status, 303);
      assertConforms('POST', '/oidc/authorize/consent', deny);
      assert.equal(new URL(deny.headers.get('location')).searchParams.get('error'), 'access_denied');
    });

    // Needs identity_authorizer installed as the router's authoriser (egov serve).
    test('bearer access tokens call the egov API with the account\'s rights, within their scope', async () => {
      const cli = (args) => run([...args, '--data', node.dataDir, '--database', node.database]);
      let r = cli(['dept', 'add', '--code', 'OIDCT', '--name', 'OIDC test']);
      assert.equal(r.status, 0, r.stderr);
      r = cli(['role', 'grant', '--email', 'ana@example.mo', '--role', 'client_admin', '--dept', 'OIDCT']);
      assert.equal(r.status, 0, r.stderr);
      const token = async (scope) => {
        const t = await post('/oidc/token', {
          grant_type: 'authorization_code', code: await getCode(conf, { scope }), redirect_uri: REDIRECT,
        }, basic(conf));
        assert.equal(t.status, 200, t.text);
        return t.json.access_token;
      };
      const api = await token('openid egov.api');
      const ok = await request(node, '/api/v1/oidc/clients', { headers: { Authorization: `Bearer ${api}` } });
      assert.equal(ok.status, 200, ok.text);
      assertConforms('GET', '/api/v1/oidc/clients', ok);
      // without a scope that covers the permission the token is not enough
      const narrow = await token('openid');
      const no = await request(node, '/api/v1/oidc/clients', { headers: { Authorization: `Bearer ${narrow}` } });
      assert.equal(no.status, 401, no.text);
      assertConforms('GET', '/api/v1/oidc/clients', no);
      // A signature with one character changed where every bit counts (the
      // last characters of a base64url ES256 signature carry padding bits,
      // and 'AA' there equals the original once in 256 signatures).
      const sig = api.lastIndexOf('.') + 10;
      const forgedToken = `${api.slice(0, sig)}${api[sig] === 'A' ? 'B' : 'A'}${api.slice(sig + 1)}`;
      const forged = await request(node, '/api/v1/oidc/clients', { headers: { Authorization: `Bearer ${forgedToken}` } });
      assert.equal(forged.status, 401);
    });

    test('egov oidc rotate-key: the old key stops signing but stays published', async () => {
      const before_ = (await request(node, '/oidc/jwks')).json.keys.map((k) => k.kid);
      const r = run(['oidc', 'rotate-key', '--data', node.dataDir, '--database', node.database]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /retired 1 signing key/);
      const t = await post('/oidc/token', { grant_type: 'authorization_code', code: await getCode(conf), redirect_uri: REDIRECT }, basic(conf));
      assert.equal(t.status, 200);
      const jwks = (await request(node, '/oidc/jwks')).json;
      for (const k of before_) assert.ok(jwks.keys.some((j) => j.kid === k), 'old key still published');
      assert.ok(verifyJwt(t.json.id_token, jwks));
    });

    function pkceParams() {
      const { challenge } = pkce();
      return { code_challenge: challenge, code_challenge_method: 'S256' };
    }
  });
}
