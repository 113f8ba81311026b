// glewlwyd_bench.mjs: sets up a throwaway glewlwyd for bench/glewlwyd_bench.sh
// through glewlwyd's own admin API, then obtains refresh tokens the way
// bench/trust_bench.mjs does for egov (full authorization-code flows).
//
//   node bench/glewlwyd_bench.mjs setup URL PASSWORD ACCOUNTS N OUT_DIR
//       URL is glewlwyd's external URL (http://127.0.0.1:PORT), its database
//       freshly initialised from the SQL glewlwyd ships (which holds the
//       administrator "admin"/"password" and the database user and client
//       backends). As that administrator it:
//         - makes the scope "openid" require the user's password (glewlwyd's
//           built-in password scheme; the shipped SQL leaves it open);
//         - adds an OpenID Connect plugin instance "oidc": authorization code
//           and refresh-token grants only, ES256 signatures with a fresh P-256
//           key, one-time-use refresh tokens (each grant returns a new token
//           and disables the one presented; presenting a spent one breaks the
//           chain), rolling expiry;
//         - adds users trust-bench-0 .. trust-bench-<ACCOUNTS-1>, password
//           PASSWORD, scope openid;
//         - adds one confidential client (client_secret_basic, redirect URI
//           https://app.example.mo/callback).
//       Then trust-bench-0 logs in (POST /api/auth/), is sent to the login
//       page by the first authorization request (glewlwyd's consent step),
//       grants the scope to the client (PUT /api/auth/grant/CLIENT), and N
//       authorization-code flows follow (GET /api/oidc/auth with g_continue,
//       the login page's "continue", then the code for tokens). Writes
//       OUT_DIR/refresh-tokens.txt (one a line) and OUT_DIR/client-authz.txt
//       (the Authorization header value), and prints
//         glewlwyd.setup tokens=N seconds=S alg=ES256
//
// Exits 1 with a message on any unexpected answer. Talks to 127.0.0.1 only.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

const REDIRECT = 'https://app.example.mo/callback';
const CLIENT_ID = 'trust-bench-client';
const form = (o) => new URLSearchParams(o).toString();

function fail(msg) {
  console.error(`glewlwyd_bench.mjs: ${msg}`);
  process.exit(1);
}

async function setup(url, password, accountsStr, nStr, outDir) {
  const t0 = Date.now();
  const accounts = Number(accountsStr);
  const n = Number(nStr);
  if (!url?.startsWith('http://127.0.0.1:') || !(accounts > 0) || !(n > 0) || !outDir) {
    fail('usage: setup URL PASSWORD ACCOUNTS N OUT_DIR');
  }
  const api = `${url}/api`;

  async function call(p, { method = 'GET', headers = {}, body, json } = {}) {
    const h = { ...headers };
    let b = body;
    if (json !== undefined) {
      h['Content-Type'] = 'application/json';
      b = JSON.stringify(json);
    }
    const r = await fetch(`${api}${p}`, { method, headers: h, body: b, redirect: 'manual' });
    const text = await r.text();
    return { status: r.status, headers: r.headers, text };
  }
  function expect(what, r, status = 200) {
    if (r.status !== status) fail(`${what}: ${r.status} ${r.text.slice(0, 300)}`);
    return r;
  }
  async function login(username, pw) {
    const r = expect(`login ${username}`, await call('/auth/', { method: 'POST', json: { username, password: pw } }));
    const sc = r.headers.get('set-cookie');
    if (!sc) fail(`login ${username}: no session cookie`);
    return sc.split(';')[0];
  }

  const admin = { Cookie: await login('admin', 'password') };

  expect('scope openid', await call('/scope/openid', {
    method: 'PUT', headers: admin,
    json: { display_name: 'Open ID', description: 'Open ID Connect scope', password_required: true, password_max_age: 0, scheme: {} },
  }));

  const { privateKey, publicKey } = generateKeyPairSync('ec', {
    namedCurve: 'prime256v1',
    privateKeyEncoding: { type: 'sec1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  expect('oidc plugin', await call('/mod/plugin/', {
    method: 'POST', headers: admin,
    json: {
      module: 'oidc', name: 'oidc', display_name: 'OpenID Connect', enabled: true,
      parameters: {
        iss: `${url}/api/oidc`,
        'jwt-type': 'ecdsa', 'jwt-key-size': '256', key: privateKey, cert: publicKey,
        'access-token-duration': 3600, 'refresh-token-duration': 1209600, 'code-duration': 600,
        'refresh-token-rolling': true, 'refresh-token-one-use': 'always',
        'allow-non-oidc': false,
        'auth-type-code-enabled': true, 'auth-type-refresh-enabled': true,
        'auth-type-token-enabled': false, 'auth-type-id-token-enabled': false, 'auth-type-none-enabled': false,
        'auth-type-password-enabled': false, 'auth-type-client-enabled': false, 'auth-type-device-enabled': false,
        'allowed-scope': ['openid'], 'subject-type': 'public', 'jwks-show': true,
        'pkce-allowed': false, 'introspection-revocation-allowed': false, 'register-client-allowed': false,
        'session-management-allowed': false, 'request-parameter-allow': false,
        'name-claim': 'on-demand', 'email-claim': 'no', 'scope-claim': 'no', 'address-claim': { type: 'no' },
      },
    },
  }));
  const disc = expect('discovery', await call('/oidc/.well-known/openid-configuration'));
  const algs = JSON.parse(disc.text).id_token_signing_alg_values_supported || [];
  if (!algs.includes('ES256')) fail(`the plugin does not sign with ES256 (${algs.join(',')})`);

  for (let i = 0; i < accounts; i++) {
    expect(`user ${i}`, await call('/user/', {
      method: 'POST', headers: admin,
      json: { username: `trust-bench-${i}`, name: `Bench ${i}`, email: `trust-bench-${i}@example.mo`, scope: ['openid'], password, enabled: true },
    }));
  }

  const secret = randomBytes(24).toString('base64url');
  expect('client', await call('/client/', {
    method: 'POST', headers: admin,
    json: {
      client_id: CLIENT_ID, name: 'Benchmark app', enabled: true, confidential: true,
      client_secret: secret, token_endpoint_auth_method: ['client_secret_basic'],
      scope: ['openid'], redirect_uri: [REDIRECT], authorization_type: ['code', 'refresh_token'],
    },
  }));
  const authz = `Basic ${Buffer.from(`${CLIENT_ID}:${secret}`).toString('base64')}`;

  const user = { Cookie: await login('trust-bench-0', password) };
  const authorize = (i, cont) => call(`/oidc/auth?${form({
    response_type: 'code', client_id: CLIENT_ID, redirect_uri: REDIRECT, scope: 'openid', state: `s${i}`, nonce: `n${i}`,
  })}${cont ? '&g_continue' : ''}`, { headers: user });

  // The first request goes to the login page, where the user consents.
  const first = await authorize(0, false);
  if (first.status !== 302 || !(first.headers.get('location') || '').includes('login.html')) {
    fail(`first authorize: ${first.status} ${first.headers.get('location')}`);
  }
  expect('grant', await call(`/auth/grant/${CLIENT_ID}`, { method: 'PUT', headers: user, json: { scope: 'openid' } }));

  const tokens = [];
  for (let i = 0; i < n; i++) {
    const r = await authorize(i, true);
    const loc = r.headers.get('location') || '';
    if (r.status !== 302 || !loc.startsWith(REDIRECT)) fail(`authorize: ${r.status} ${loc}`);
    const code = new URL(loc).searchParams.get('code');
    if (!code) fail(`no code in ${loc}`);
    const t = expect('token', await call('/oidc/token/', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: authz },
      body: form({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT }),
    }));
    const rt = JSON.parse(t.text).refresh_token;
    if (!rt) fail('no refresh_token in the token answer');
    tokens.push(rt);
  }

  // One rotation by hand: a different token must come back (one-time use is
  // on), so the load run measures rotating chains, not a reusable token.
  const probe = await call('/oidc/token/', {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: authz },
    body: form({ grant_type: 'refresh_token', refresh_token: tokens[0] }),
  });
  expect('refresh', probe);
  const next = JSON.parse(probe.text).refresh_token;
  if (!next || next === tokens[0]) fail('refresh did not rotate the token');
  tokens[0] = next;

  writeFileSync(path.join(outDir, 'refresh-tokens.txt'), `${tokens.join('\n')}\n`, { mode: 0o600 });
  writeFileSync(path.join(outDir, 'client-authz.txt'), `${authz}\n`, { mode: 0o600 });
  console.log(`glewlwyd.setup tokens=${tokens.length} seconds=${((Date.now() - t0) / 1000).toFixed(2)} alg=ES256`);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'setup') setup(...args).catch((e) => fail(e.stack || String(e)));
else fail('usage: setup URL PASSWORD ACCOUNTS N OUT_DIR');
