// The account pages in Chromium against a real node whose mail goes to the
// mail catcher: register -> verification mail -> open the link -> log in ->
// account page -> enrol TOTP (code computed here) -> log out -> log in with
// the TOTP step -> sessions -> log out everywhere. Also: every new page in
// every language renders from the catalogues, passes axe (WCAG 2.2 AA), can
// be walked by keyboard with a visible focus, and a bad login shows a
// focused error summary linked to the field; ?return= takes only paths.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startEgov } from '../lib/egov.mjs';
import { startMailcatcher } from '../lib/mailcatcher.mjs';
import { LANGS, axeSource, catalogue, launch, openPage } from './browser.mjs';

const PAGES = ['/login.html', '/register.html', '/verify.html', '/reset.html', '/account.html'];
const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa'];
const PW = 'a long pass phrase for tests 7';

function base32Decode(s) {
  const alpha = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0; let value = 0; const out = [];
  for (const ch of s.replace(/=+$/, '').toUpperCase()) {
    value = (value << 5) | alpha.indexOf(ch);
    bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 0xff); bits -= 8; }
  }
  return Buffer.from(out);
}

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) of a base32 secret.
export function totp(secret, t = Date.now()) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(t / 1000 / 30)));
  const h = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const o = h[h.length - 1] & 0xf;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1e6).padStart(6, '0');
}

let mc;
let node;
let browser;

before(async () => {
  mc = await startMailcatcher();
  node = await startEgov({ config: `[mail]\nsmtp_port = ${mc.port}\nstarttls = off\npoll_ms = 50\n` });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await node?.stop();
  await mc?.stop();
});

// A verified account made through the API and the mailed token.
const reader = { email: 'reader@example.test' };
async function signIn(ctx) {
  if (!reader.verified) {
    const r = await fetch(`${node.url}/api/v1/identity/register`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: reader.email, name: 'Reader', password: PW }),
    });
    assert.equal(r.status, 201);
    const m = await mc.waitFor(reader.email);
    const token = /[?&]token=([A-Za-z0-9_-]+)/.exec(m.text)[1];
    const v = await fetch(`${node.url}/api/v1/identity/verify-email`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }),
    });
    assert.equal(v.status, 204);
    reader.verified = true;
  }
  const res = await ctx.request.post(`${node.url}/api/v1/identity/login`, { data: { email: reader.email, password: PW } });
  assert.equal(res.status(), 200);
}

describe('rendering, accessibility and keyboard', () => {
  for (const p of PAGES) {
    for (const lang of LANGS) {
      test(`${p} in ${lang}: texts from the catalogue, axe clean`, async () => {
        const ctx = await browser.newContext({ bypassCSP: true });
        if (p === '/account.html') await signIn(ctx);
        const page = await ctx.newPage();
        await page.goto(`${node.url}${p}?lang=${lang}`);
        if (p === '/account.html') await page.waitForSelector('[data-signed-in]:not([hidden])');
        assert.equal(await page.getAttribute('html', 'lang'), lang);
        const key = `${p.slice(1, -5)}.heading`;
        assert.equal((await page.textContent('h1')).trim(), catalogue[lang][key]);
        assert.ok(!(await page.content()).includes('{{'), 'no unrendered keys');
        await page.waitForLoadState('networkidle');
        await page.addScriptTag({ path: axeSource });
        const result = await page.evaluate((tags) => window.axe.run(document, {
          runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'],
        }), TAGS);
        assert.deepEqual(result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(' ')}`), []);
        await ctx.close();
      });
    }
  }

  test('login page: every control reachable by Tab, with a visible focus', async () => {
    const ctx = await browser.newContext();
    const { page, problems } = await openPage(ctx);
    await page.goto(`${node.url}/login.html?lang=en`);
    const seen = new Set();
    for (let i = 0; i < 30; i++) {
      await page.keyboard.press('Tab');
      const info = await page.evaluate(() => {
        const el = document.activeElement;
        if (el === document.body) return null;
        const cs = getComputedStyle(el);
        return { id: el.id || el.getAttribute('href') || el.textContent.trim(), outline: cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0 };
      });
      if (!info) break; // past the last control
      assert.ok(info.outline, `focus visible on ${info.id}`);
      seen.add(info.id);
    }
    for (const want of ['email', 'password', 'Log in', '/reset.html', '/register.html']) assert.ok(seen.has(want), `reached ${want}: ${[...seen]}`);
    assert.ok([...seen].some((s) => String(s).startsWith('/login/certificate')), 'certificate link reached');
    assert.deepEqual(problems, []);
    await ctx.close();
  });

  test('a bad login shows a focused error summary linked to the field', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${node.url}/login.html?lang=pt`);
    await page.click('button[type=submit]');
    let focused = await page.evaluate(() => document.activeElement.matches('[data-api-errors]'));
    assert.ok(focused, 'summary focused for empty fields');
    assert.equal(await page.getAttribute('#email', 'aria-invalid'), 'true');
    await page.fill('#email', 'nobody@example.test');
    await page.fill('#password', 'wrong password here');
    await page.click('button[type=submit]');
    await page.waitForFunction(() => document.activeElement.matches('[data-api-errors]')
      && document.querySelector('.error-summary__list a'));
    const link = await page.$eval('.error-summary__list a', (a) => ({ href: a.getAttribute('href'), text: a.textContent }));
    assert.ok(link.text.length > 0);
    await page.click('.error-summary__list a');
    focused = await page.evaluate((h) => `#${document.activeElement.id}` === h, link.href);
    assert.ok(focused, 'the link moves focus to its field');
    await ctx.close();
  });

  test('?return= accepts only same-site paths', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    for (const [ret, want] of [['https://evil.example/', '/account.html'], ['//evil.example', '/account.html'],
      ['/\\evil.example', '/account.html'], ['javascript:alert(1)', '/account.html'], ['/design.html', '/design.html']]) {
      await page.goto(`${node.url}/login.html?return=${encodeURIComponent(ret)}&acr=2`);
      const href = await page.getAttribute('[data-cert-link]', 'href');
      const u = new URL(href, node.url);
      assert.equal(u.pathname, '/login/certificate');
      assert.equal(u.searchParams.get('return'), want, ret);
      assert.equal(u.searchParams.get('acr'), '2');
    }
    await ctx.close();
  });

  test('the account page sends a visitor without a session to log in', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${node.url}/account.html`);
    await page.waitForURL(/\/login\.html\?return=%2Faccount\.html$/);
    await ctx.close();
  });
});

test('register, verify by mail, log in, enrol TOTP, log in with it, log out everywhere', async () => {
  const email = 'ines@example.test';
  const ctx = await browser.newContext();
  const { page, problems } = await openPage(ctx);
  await page.goto(`${node.url}/register.html?lang=pt`);
  await page.fill('#name', 'Inês Lopes');
  await page.fill('#email', email);
  await page.fill('#password', PW);
  await page.click('#register-form button[type=submit]');
  await page.waitForSelector('[data-step="done"]:not([hidden])');
  assert.ok(await page.evaluate(() => document.activeElement.id === 'done-heading'));

  const mail = await mc.waitFor(email);
  const token = /[?&]token=([A-Za-z0-9_-]+)/.exec(mail.text)[1];
  // The mailed link's token opens the verification page.
  await page.goto(`${node.url}/verify.html?token=${token}`);
  await page.waitForSelector('[data-show="ok"]:not([hidden])');
  assert.ok(!page.url().includes('token='), 'token removed from the address bar');

  await page.goto(`${node.url}/login.html?return=%2Faccount.html`);
  await page.fill('#email', email);
  await page.fill('#password', PW);
  await page.click('#login-form button[type=submit]');
  await page.waitForURL(/\/account\.html$/);
  await page.waitForSelector('[data-signed-in]:not([hidden])');
  assert.equal(await page.textContent('[data-field="email"]'), email);
  assert.equal(await page.textContent('[data-field="display_name"]'), 'Inês Lopes');

  await page.click('[data-totp-start]');
  await page.waitForSelector('[data-totp="enrol"]:not([hidden])');
  const secret = (await page.textContent('[data-secret]')).trim();
  const qr = await page.getAttribute('[data-qr]', 'src');
  assert.match(qr, /^data:image\/svg\+xml;base64,/);
  assert.ok(await page.$eval('[data-qr]', (img) => img.complete && img.naturalWidth > 0), 'QR image decodes');
  await page.fill('#totp-code', totp(secret));
  await page.click('#totp-form button[type=submit]');
  await page.waitForSelector('[data-totp="codes"]:not([hidden])');
  assert.equal((await page.$$('[data-codes] li')).length, 10);

  await page.click('#logout-form button');
  await page.waitForURL(/\/login\.html$/);

  // A second browser session, so there is another one to revoke.
  const other = await browser.newContext();
  const r2 = await other.request.post(`${node.url}/api/v1/identity/login`, { data: { email, password: PW } });
  assert.equal((await r2.json()).next, 'totp');

  await page.goto(`${node.url}/login.html?return=%2Faccount.html`);
  await page.fill('#email', email);
  await page.fill('#password', PW);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('[data-step="totp"]:not([hidden])');
  assert.ok(await page.evaluate(() => document.activeElement.id === 'code'));
  // The code of the next step: the enrolment used this one (replays are refused).
  await page.fill('#code', totp(secret, Date.now() + 30000));
  await page.click('#totp-form button[type=submit]');
  await page.waitForURL(/\/account\.html$/);
  await page.waitForSelector('[data-signed-in]:not([hidden])');
  assert.equal(await page.textContent('[data-field="acr"]'), catalogue.pt['account.acr.2']);
  await page.waitForSelector('[data-sessions] tr');
  const before = (await page.$$('[data-sessions] tr')).length;
  assert.ok(before >= 1);
  await page.click('[data-revoke-all]');
  await page.waitForFunction(() => document.querySelector('[data-sessions-status]').textContent.length > 0);
  await page.waitForFunction(() => document.querySelectorAll('[data-sessions] tr').length === 1);
  assert.ok(await page.$('[data-sessions] tr [data-current]:not([hidden])'));
  assert.deepEqual(problems.filter((p) => !/HTTP 401/.test(p)), []);
  await other.close();
  await ctx.close();
});
