// trust_bench.mjs: sets up the refresh-token benchmark of scripts/bench.sh
// against a running node, through the public API only, the way a
// department's application would:
//   node bench/trust_bench.mjs URL ADMIN_TOKEN EMAIL PASSWORD N OUT_DIR
// logs EMAIL in (POST /api/v1/identity/login), registers a confidential
// client (admin API), then runs N full authorization-code flows (authorize,
// consent the first time, code for tokens with client_secret_basic) and
// writes OUT_DIR/refresh-tokens.txt (one refresh token a line, one per load
// worker) and OUT_DIR/client-authz.txt (the Authorization header value).
// Prints "trust.setup tokens=N seconds=S". Exits 1 with a message on any
// unexpected answer. Talks to 127.0.0.1 only (the URL given).
import { writeFileSync } from 'node:fs';
import path from 'node:path';

const [url, adminToken, email, password, nStr, outDir] = process.argv.slice(2);
const REDIRECT = 'https://app.example.mo/callback';
const form = (o) => new URLSearchParams(o).toString();

function fail(msg) {
  console.error(`trust_bench.mjs: ${msg}`);
  process.exit(1);
}

async function call(p, { method = 'GET', headers = {}, body } = {}) {
  const r = await fetch(`${url}${p}`, { method, headers, body, redirect: 'manual' });
  const text = await r.text();
  return { status: r.status, headers: r.headers, text };
}

const unescape = (s) => s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'")
  .replace(/&lt;/g, '<').replace(/&gt;/g, '>');

async function main() {
  const t0 = Date.now();
  const n = Number(nStr);
  if (!url?.startsWith('http://127.0.0.1:') || !(n > 0)) fail('usage: URL ADMIN_TOKEN EMAIL PASSWORD N OUT_DIR');

  const login = await call('/api/v1/identity/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email, password }),
  });
  if (login.status !== 200) fail(`login: ${login.status} ${login.text}`);
  const cookie = login.headers.get('set-cookie').split(';')[0];

  const mk = await call('/api/v1/oidc/clients', {
    method: 'POST',
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'Benchmark app', type: 'confidential', redirect_uris: [REDIRECT], scopes: ['openid', 'email', 'profile'] }),
  });
  if (mk.status !== 201) fail(`client: ${mk.status} ${mk.text}`);
  const client = JSON.parse(mk.text);
  const authz = `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`;

  const tokens = [];
  for (let i = 0; i < n; i++) {
    const q = form({
      response_type: 'code', client_id: client.client_id, redirect_uri: REDIRECT,
      scope: 'openid email profile', state: `s${i}`, nonce: `n${i}`,
    });
    let r = await call(`/oidc/authorize?${q}`, { headers: { Cookie: cookie } });
    if (r.status === 200) {
      const fields = Object.fromEntries([...r.text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)]
        .map((m) => [m[1], unescape(m[2])]));
      r = await call('/oidc/authorize/consent', {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: cookie },
        body: form({ ...fields, decision: 'allow' }),
      });
    }
    if (![302, 303].includes(r.status)) fail(`authorize: ${r.status} ${r.text.slice(0, 300)}`);
    const code = new URL(r.headers.get('location')).searchParams.get('code');
    if (!code) fail(`no code in ${r.headers.get('location')}`);
    const t = await call('/oidc/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: authz },
      body: form({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT }),
    });
    if (t.status !== 200) fail(`token: ${t.status} ${t.text}`);
    const rt = JSON.parse(t.text).refresh_token;
    if (!rt) fail('no refresh_token in the token answer');
    tokens.push(rt);
  }
  writeFileSync(path.join(outDir, 'refresh-tokens.txt'), `${tokens.join('\n')}\n`, { mode: 0o600 });
  writeFileSync(path.join(outDir, 'client-authz.txt'), `${authz}\n`, { mode: 0o600 });
  console.log(`trust.setup tokens=${tokens.length} seconds=${((Date.now() - t0) / 1000).toFixed(2)}`);
}

main().catch((e) => fail(e.stack || String(e)));
