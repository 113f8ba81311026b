// The account page's e-certificates and allowed applications in Chromium
// against a real node: a resident made with `egov user add` signs in,
// requests a certificate with a key pair made in the page (WebCrypto, CSR
// built in web/js/csr.js), sees it listed, downloads the certificate and
// the private key, revokes it after the confirmation step and sees it
// revoked; the filled page passes axe; an application the person allowed
// (OIDC code flow with consent, run by fetch in the page) is listed and
// withdrawing it works. The certificate the page got is checked with
// openssl against the CA, and its key against the downloaded private key.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run, startEgov } from '../lib/egov.mjs';
import { axeSource, catalogue, launch, openPage } from './browser.mjs';

const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa'];
const PW = 'a long pass phrase for tests 7';
const ADMIN = 'browser-test-admin-token-0123456789abcdefghijkl';
const REDIRECT = 'https://app.example.mo/callback';
const EMAIL = 'holder@example.mo';

let node;
let browser;
let dir;

function openssl(args) {
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 30000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'egov-certs-'));
  node = await startEgov({ config: `[server]\nadmin_token = ${ADMIN}\n` });
  const add = run(['user', 'add', '--email', EMAIL, '--name', 'Chan Tai Man', '--kind', 'resident', '--password-stdin',
    '--data', node.dataDir, '--database', node.database], { input: `${PW}\n` });
  assert.equal(add.status, 0, add.stderr);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await node?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function signedIn(lang = 'en') {
  const ctx = await browser.newContext({ acceptDownloads: true });
  const res = await ctx.request.post(`${node.url}/api/v1/identity/login`, { data: { email: EMAIL, password: PW } });
  assert.equal(res.status(), 200);
  const { page, problems } = await openPage(ctx);
  await page.goto(`${node.url}/account.html?lang=${lang}`);
  await page.locator('[data-signed-in]').waitFor({ state: 'visible' });
  return { ctx, page, problems };
}

// Injected through the DevTools protocol, so the page's CSP stays in force
// (a script tag would need bypassCSP, which would hide the page's own CSP
// violations).
async function axe(page) {
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(readFileSync(axeSource, 'utf8'));
  return page.evaluate((tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags } })
    .then((r) => r.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)), TAGS);
}

async function saved(download, name) {
  const p = path.join(dir, name);
  await download.saveAs(p);
  return readFileSync(p, 'utf8');
}

describe('e-certificates on the account page', () => {
  test('request with an in-browser key, list, download, axe, revoke', async () => {
    const t = catalogue.en;
    const { ctx, page, problems } = await signedIn('en');
    try {
      await page.locator('[data-certs-empty]').waitFor({ state: 'visible' });
      assert.equal(await page.evaluate(() => window.isSecureContext), true);
      // The browser method is the default; the passphrase is only for PKCS#12.
      assert.equal(await page.isChecked('#cert-method-browser'), true);
      assert.equal(await page.isVisible('#cert-passphrase'), false);
      await page.check('#cert-method-pkcs12');
      assert.equal(await page.isVisible('#cert-passphrase'), true);
      await page.check('#cert-method-browser');
      await page.selectOption('#cert-profile', 'person_auth');
      await page.click('#cert-form button[type="submit"]');

      const issued = page.locator('[data-cert-issued]');
      await issued.waitFor({ state: 'visible' });
      assert.equal(await page.evaluate(() => document.activeElement.id), 'issued-heading');
      assert.equal((await page.textContent('[data-certs-status]')).trim(), t['account.certs.issued.status']);
      const row = page.locator('[data-certs] tr');
      await row.first().waitFor();
      assert.equal(await row.count(), 1);
      const serial = await row.first().getAttribute('data-serial');
      assert.match(serial, /^[0-9a-f]{1,40}$/);
      assert.equal((await row.first().locator('[data-col="status"]').textContent()).trim(), t['account.certs.status.good']);
      assert.equal((await row.first().locator('[data-col="profile"]').textContent()).trim(), t['account.certs.profile.person_auth']);

      // The certificate and the key made in the page, as downloads.
      const [dc] = await Promise.all([page.waitForEvent('download'), page.click('[data-issued-cert]')]);
      assert.equal(dc.suggestedFilename(), `egov-${serial}.pem`);
      const certPem = await saved(dc, 'issued.pem');
      assert.match(certPem, /^-----BEGIN CERTIFICATE-----/);
      const [dk] = await Promise.all([page.waitForEvent('download'), page.click('[data-issued-key]')]);
      const keyPem = await saved(dk, 'issued.key');
      assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----/);
      const fromCert = openssl(['x509', '-in', path.join(dir, 'issued.pem'), '-noout', '-pubkey']);
      const fromKey = openssl(['pkey', '-in', path.join(dir, 'issued.key'), '-pubout']);
      assert.equal(fromCert.status, 0, fromCert.out);
      assert.equal(fromCert.out, fromKey.out, 'the certificate is for the key made in the browser');
      const subj = openssl(['x509', '-in', path.join(dir, 'issued.pem'), '-noout', '-subject']);
      assert.match(subj.out, /CN = Chan Tai Man/);

      // The list's download link gives the same certificate from the server.
      const [dl] = await Promise.all([page.waitForEvent('download'), row.first().locator('[data-cert-download]').click()]);
      assert.equal(dl.suggestedFilename(), `egov-${serial}.pem`);
      assert.equal(await saved(dl, 'listed.pem'), certPem);

      const violations = await axe(page);
      assert.deepEqual(violations, [], 'axe with the certificate listed');

      // Revoke: a confirmation step that takes focus, cancel returns it, Escape closes.
      const revokeBtn = row.first().locator('[data-cert-revoke]');
      await revokeBtn.click();
      await page.locator('[data-revoke-confirm]').waitFor({ state: 'visible' });
      assert.equal(await page.evaluate(() => document.activeElement.id), 'revoke-heading');
      assert.equal((await page.textContent('[data-revoke-serial]')).trim(), serial);
      await page.click('[data-revoke-cancel]');
      assert.equal(await page.isVisible('[data-revoke-confirm]'), false);
      assert.equal(await page.evaluate(() => document.activeElement.hasAttribute('data-cert-revoke')), true);
      await page.keyboard.press('Enter');
      await page.locator('[data-revoke-confirm]').waitFor({ state: 'visible' });
      assert.deepEqual(await axe(page), [], 'axe with the confirmation open');
      await page.selectOption('#revoke-reason', 'keyCompromise');
      await page.click('#revoke-form button[type="submit"]');
      await page.waitForFunction(() => document.querySelector('[data-certs] tr')?.dataset.status === 'revoked');
      assert.equal((await row.first().locator('[data-col="status"]').textContent()).trim(), t['account.certs.status.revoked']);
      assert.equal(await row.first().locator('[data-cert-revoke]').count(), 0);
      assert.match(await page.textContent('[data-certs-status]'), new RegExp(t['account.certs.revoked.status']));
      await page.waitForFunction(() => document.activeElement?.id === 'certs-heading');
      const api = await ctx.request.get(`${node.url}/api/v1/identity/me/certificates`);
      assert.equal((await api.json()).items[0].reason, 'keyCompromise');
      assert.deepEqual(problems, []);
    } finally {
      await ctx.close();
    }
  });

  test('a PKCS#12 bundle is offered for download', async () => {
    const { ctx, page, problems } = await signedIn('pt');
    try {
      await page.check('#cert-method-pkcs12');
      await page.fill('#cert-passphrase', 'bundle pass phrase');
      await page.click('#cert-form button[type="submit"]');
      await page.locator('[data-issued-p12]').waitFor({ state: 'visible' });
      assert.equal(await page.isVisible('[data-issued-key]'), false);
      const [d] = await Promise.all([page.waitForEvent('download'), page.click('[data-issued-p12]')]);
      assert.match(d.suggestedFilename(), /^egov-[0-9a-f]+\.p12$/);
      const p = path.join(dir, 'b.p12');
      await d.saveAs(p);
      const open = openssl(['pkcs12', '-in', p, '-passin', 'pass:bundle pass phrase', '-nodes', '-out', path.join(dir, 'b.pem')]);
      assert.equal(open.status, 0, open.out);
      assert.equal(await page.locator('[data-certs] tr').count(), 2);
      assert.deepEqual(problems, []);
    } finally {
      await ctx.close();
    }
  });
});

describe('applications allowed on the account page', () => {
  test('a grant made by an OIDC flow is listed and can be withdrawn', async () => {
    const t = catalogue['zh-Hant'];
    const mk = await fetch(`${node.url}/api/v1/oidc/clients`, {
      method: 'POST', headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'Public Library', type: 'public', redirect_uris: [REDIRECT], scopes: ['openid', 'email', 'profile'] }),
    });
    assert.equal(mk.status, 201);
    const client = await mk.json();
    const { ctx, page, problems } = await signedIn('zh-Hant');
    try {
      await page.locator('[data-apps-empty]').waitFor({ state: 'visible' });
      // The flow, by fetch from the page (its cookie): authorize shows the
      // consent form, allowing it records the grant and redirects.
      const status = await page.evaluate(async ({ clientId, redirect }) => {
        const q = new URLSearchParams({
          response_type: 'code', client_id: clientId, redirect_uri: redirect, scope: 'openid email', state: 's', nonce: 'n',
          code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
        });
        const html = await (await fetch(`/oidc/authorize?${q}`)).text();
        const doc = new DOMParser().parseFromString(html, 'text/html');
        const body = new URLSearchParams();
        doc.querySelectorAll('input[type="hidden"]').forEach((i) => body.append(i.name, i.value));
        body.append('decision', 'allow');
        const r = await fetch('/oidc/authorize/consent', { method: 'POST', body, redirect: 'manual' });
        return r.type;
      }, { clientId: client.client_id, redirect: REDIRECT });
      assert.equal(status, 'opaqueredirect');
      await page.reload();
      const row = page.locator('[data-apps] tr');
      await row.first().waitFor();
      assert.equal(await row.count(), 1);
      assert.equal((await row.first().locator('[data-col="name"]').textContent()).trim(), 'Public Library');
      assert.deepEqual(await row.first().locator('[data-col="scopes"] li').allTextContents(), ['openid', 'email']);
      assert.deepEqual(await axe(page), [], 'axe with a grant listed');
      await row.first().locator('[data-withdraw]').focus();
      await page.keyboard.press('Enter');
      await page.locator('[data-apps-empty]').waitFor({ state: 'visible' });
      assert.equal(await row.count(), 0);
      assert.match(await page.textContent('[data-apps-status]'), new RegExp(t['account.apps.withdrawn']));
      await page.waitForFunction(() => document.activeElement?.id === 'apps-heading');
      const api = await ctx.request.get(`${node.url}/api/v1/identity/me/grants`);
      assert.deepEqual((await api.json()).items, []);
      // The consent's redirect to the application, not followed
      // (redirect: 'manual'), is reported as an aborted request.
      assert.deepEqual(problems.filter((p) => !p.includes(`request failed: ${REDIRECT}?`)), []);
    } finally {
      await ctx.close();
    }
  });
});

// The sections render from the catalogues in every language.
describe('texts', () => {
  test('the new sections use catalogue texts in all languages', async () => {
    for (const lang of ['zh-Hant', 'pt', 'en']) {
      const { ctx, page, problems } = await signedIn(lang);
      try {
        const t = catalogue[lang];
        assert.equal((await page.textContent('#certs-heading')).trim(), t['account.certs.heading']);
        assert.equal((await page.textContent('label[for="cert-method-browser"]')).trim(), t['account.certs.method.browser']);
        assert.equal((await page.textContent('#apps-heading')).trim(), t['account.apps.heading']);
        const html = await page.content();
        assert.doesNotMatch(html, /\{\{[a-z]/, 'no unrendered {{key}}');
        assert.deepEqual(problems, []);
      } finally {
        await ctx.close();
      }
    }
  });
});
