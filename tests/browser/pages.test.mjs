// The web shell in a real browser: every page in every language, the
// language switch and its cookie, the security headers, no console errors
// or CSP violations, keyboard access and visible focus, and a screenshot of
// each language for a person to look at.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startEgov } from '../lib/egov.mjs';
import { LANGS, PAGES, catalogue, launch, openPage } from './browser.mjs';

let node;
let browser;

before(async () => {
  node = await startEgov();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

function rawGet(target) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: node.port, path: target, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

// A locale that matches none of ours, so the server's default shows.
const NO_MATCH = 'de-DE';

test('landing page defaults to Traditional Chinese', async () => {
  const ctx = await browser.newContext({ locale: NO_MATCH });
  const { page, problems } = await openPage(ctx);
  const res = await page.goto(`${node.url}/`);
  assert.equal(res.status(), 200);
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-Hant');
  assert.equal(await page.textContent('h1'), catalogue['zh-Hant']['home.heading']);
  assert.equal(await page.title(), catalogue['zh-Hant']['home.title']);
  assert.deepEqual(problems, []);
  await ctx.close();
});

test('Accept-Language picks the language', async () => {
  for (const [locale, want] of [['zh-MO', 'zh-Hant'], ['zh-TW', 'zh-Hant'], ['pt-BR', 'pt'],
    ['pt-PT', 'pt'], ['en-GB', 'en'], ['en-US', 'en'], [NO_MATCH, 'zh-Hant']]) {
    const ctx = await browser.newContext({ locale });
    const page = await ctx.newPage();
    await page.goto(`${node.url}/`);
    assert.equal(await page.getAttribute('html', 'lang'), want, `locale ${locale}`);
    assert.equal(await page.textContent('h1'), catalogue[want]['home.heading'], `locale ${locale}`);
    await ctx.close();
  }
});

test('every page renders in every language with the catalogue texts', async () => {
  const ctx = await browser.newContext({ locale: NO_MATCH });
  for (const p of PAGES) {
    for (const lang of LANGS) {
      const { page, problems } = await openPage(ctx);
      const res = await page.goto(`${node.url}${p}?lang=${lang}`);
      const where = `${p} in ${lang}`;
      assert.equal(res.status(), 200, where);
      const body = await res.text();
      assert.ok(!body.includes('{{') && !body.includes('}}'), `unresolved placeholder on ${where}`);
      assert.equal(await page.getAttribute('html', 'lang'), lang, where);
      const key = p === '/' ? 'home' : 'design';
      assert.equal((await page.textContent('h1')).trim(), catalogue[lang][`${key}.heading`], where);
      assert.equal(await page.title(), catalogue[lang][`${key}.title`], where);
      assert.equal((await page.textContent('.skip-link')).trim(), catalogue[lang]['skip.main'], where);
      // The switch: each link names its language in that language, and
      // only the current one is marked.
      for (const other of LANGS) {
        const link = page.locator(`.lang-switch a[hreflang="${other}"]`);
        assert.equal((await link.textContent()).trim(), catalogue[other][`lang.name.${other}`], where);
        assert.equal(await link.getAttribute('lang'), other, where);
        assert.equal(await link.getAttribute('aria-current'), other === lang ? 'page' : 'false', where);
      }
      assert.equal(await page.locator('main#main h1').count(), 1, where);
      assert.deepEqual(problems, [], where);
      await page.close();
    }
  }
  await ctx.close();
});

test('the language switch changes the language and the choice persists', async () => {
  const ctx = await browser.newContext({ locale: NO_MATCH });
  const page = await ctx.newPage();
  await page.goto(`${node.url}/`);
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-Hant');

  await Promise.all([page.waitForURL(/\?lang=pt$/), page.getByRole('link', { name: 'Português' }).click()]);
  assert.equal(await page.getAttribute('html', 'lang'), 'pt');
  assert.equal(await page.textContent('h1'), catalogue.pt['home.heading']);
  assert.equal(await page.getAttribute('a[hreflang="pt"]', 'aria-current'), 'page');
  const cookie = (await ctx.cookies(node.url)).find((c) => c.name === 'lang');
  assert.ok(cookie, 'the server set a lang cookie');
  assert.equal(cookie.value, 'pt');
  assert.equal(cookie.path, '/');
  assert.equal(cookie.sameSite, 'Lax');
  assert.ok(cookie.expires - Date.now() / 1000 > 300 * 24 * 3600, 'the cookie lasts about a year');

  // Without ?lang= the cookie wins over Accept-Language, on every page.
  await page.goto(`${node.url}/`);
  assert.equal(await page.getAttribute('html', 'lang'), 'pt');
  await page.goto(`${node.url}/design.html`);
  assert.equal(await page.getAttribute('html', 'lang'), 'pt');
  assert.equal(await page.textContent('h1'), catalogue.pt['design.heading']);

  // Switching again from another page keeps the path.
  await Promise.all([page.waitForURL(/design\.html\?lang=en$/), page.getByRole('link', { name: 'English' }).click()]);
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  await page.goto(`${node.url}/`);
  assert.equal(await page.textContent('h1'), catalogue.en['home.heading']);

  await Promise.all([page.waitForURL(/\?lang=zh-Hant$/), page.getByRole('link', { name: '繁體中文' }).click()]);
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-Hant');
  assert.equal(await page.textContent('h1'), catalogue['zh-Hant']['home.heading']);
  await ctx.close();
});

test('pages carry the security headers and caching headers', async () => {
  for (const p of PAGES) {
    const res = await fetch(`${node.url}${p}?lang=en`);
    assert.equal(res.status, 200);
    const csp = res.headers.get('content-security-policy') || '';
    for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]) {
      assert.ok(csp.includes(d), `${p}: CSP has ${d}: ${csp}`);
    }
    assert.ok(!/unsafe-inline|unsafe-eval/.test(csp), `${p}: CSP allows nothing inline`);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    assert.match(res.headers.get('vary') || '', /Accept-Language/i);
    assert.match(res.headers.get('vary') || '', /Cookie/i);
    const etag = res.headers.get('etag');
    assert.match(etag, /^"[0-9a-f]{64}"$/);
    await res.arrayBuffer();

    // Revalidation: the same tag gets 304, another language another tag.
    const again = await fetch(`${node.url}${p}`, { headers: { 'If-None-Match': etag, Cookie: 'lang=en' } });
    assert.equal(again.status, 304);
    const pt = await fetch(`${node.url}${p}`, { headers: { 'If-None-Match': etag, Cookie: 'lang=pt' } });
    assert.equal(pt.status, 200);
    assert.notEqual(pt.headers.get('etag'), etag);
    await pt.arrayBuffer();
  }
  for (const [p, type] of [['/css/egov.css', 'text/css; charset=utf-8'],
    ['/js/egov.js', 'text/javascript; charset=utf-8'], ['/favicon.svg', 'image/svg+xml; charset=utf-8']]) {
    const res = await fetch(`${node.url}${p}`);
    assert.equal(res.status, 200, p);
    assert.equal(res.headers.get('content-type'), type, p);
    assert.match(res.headers.get('cache-control') || '', /max-age=\d+/, p);
    assert.match(res.headers.get('etag') || '', /^"[0-9a-f]{64}"$/, p);
    await res.arrayBuffer();
  }
  // Sent byte for byte (fetch would resolve the dots first).
  for (const p of ['/..', '/index.html/..', '/%2e%2e/', '/../etc/passwd', '/css/../index.html',
    '/nope.html', '/css/', '/.hidden']) {
    const { status, body } = await rawGet(p);
    assert.ok(status === 404 || status === 400, `${p}: ${status}`);
    assert.ok(!body.includes('<html'), `${p} served a page`);
  }
});

test('the script runs under the CSP: the error summary takes focus', async () => {
  const ctx = await browser.newContext({ locale: NO_MATCH });
  const { page, problems } = await openPage(ctx);
  await page.goto(`${node.url}/design.html?lang=pt`);
  await page.waitForFunction(() => document.activeElement?.hasAttribute('data-error-summary'));
  assert.equal(await page.getAttribute('[data-error-summary]', 'role'), 'alert');
  // A link in the summary takes the reader to its field.
  await page.getByRole('link', { name: catalogue.pt['design.field.email.error'] }).click();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'email');
  assert.deepEqual(problems, []);
  await ctx.close();
});

test('keyboard: the skip link comes first and focus is clearly visible', async () => {
  const ctx = await browser.newContext({ locale: NO_MATCH });
  const page = await ctx.newPage();
  for (const lang of LANGS) {
    await page.goto(`${node.url}/?lang=${lang}`);
    await page.keyboard.press('Tab');
    const first = await page.evaluate(() => {
      const el = document.activeElement;
      const cs = getComputedStyle(el);
      const box = el.getBoundingClientRect();
      return {
        cls: el.className, href: el.getAttribute('href'), text: el.textContent.trim(),
        outlineWidth: parseFloat(cs.outlineWidth), outlineStyle: cs.outlineStyle,
        visible: box.width > 0 && box.height > 0 && box.bottom > 0 && box.top < innerHeight,
      };
    });
    assert.equal(first.cls, 'skip-link', lang);
    assert.equal(first.href, '#main');
    assert.equal(first.text, catalogue[lang]['skip.main']);
    assert.ok(first.visible, 'the skip link shows when focused');
    assert.notEqual(first.outlineStyle, 'none');
    assert.ok(first.outlineWidth >= 2, `outline ${first.outlineWidth}px`);

    // Following it moves focus into main, and the next Tab continues from there.
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
  }

  // Every control reached by Tab on the design page shows its focus.
  await page.goto(`${node.url}/design.html?lang=en`);
  await page.evaluate(() => document.activeElement?.blur());
  const seen = new Set();
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press('Tab');
    const f = await page.evaluate(() => {
      const el = document.activeElement;
      const cs = getComputedStyle(el);
      const box = el.getBoundingClientRect();
      return {
        id: `${el.tagName}#${el.id}.${el.className}[${el.getAttribute('href') || el.getAttribute('name') || ''}]`,
        // WCAG 2.5.8 exempts a link inside a sentence.
        inline: cs.display === 'inline' && el.parentElement.tagName === 'P',
        outlineWidth: parseFloat(cs.outlineWidth), outlineStyle: cs.outlineStyle,
        w: box.width, h: box.height,
      };
    });
    if (f.id.startsWith('BODY')) break;
    seen.add(f.id);
    assert.notEqual(f.outlineStyle, 'none', `${f.id} shows focus`);
    assert.ok(f.outlineWidth >= 2, `${f.id} outline ${f.outlineWidth}px`);
    // WCAG 2.2 target size (minimum): 24 by 24 CSS pixels.
    if (!f.inline) assert.ok(f.w >= 24 && f.h >= 24, `${f.id} is ${f.w}x${f.h}`);
  }
  assert.ok(seen.size >= 12, `tabbed through ${seen.size} controls`);
  await ctx.close();
});

test('screenshots of each language', async (t) => {
  const dir = process.env.EGOV_SCREENSHOT_DIR || mkdtempSync(path.join(os.tmpdir(), 'egov-shots-'));
  for (const p of PAGES) {
    for (const lang of LANGS) {
      const ctx = await browser.newContext({ locale: NO_MATCH, viewport: { width: 1100, height: 800 } });
      const page = await ctx.newPage();
      await page.goto(`${node.url}${p}?lang=${lang}`);
      await page.evaluate(() => document.fonts.ready);
      const file = path.join(dir, `${p === '/' ? 'index' : 'design'}-${lang}.png`);
      await page.screenshot({ path: file, fullPage: true });
      t.diagnostic(file);
      await ctx.close();
    }
  }
});
