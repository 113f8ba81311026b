// The staff console's frame in Chromium against a real node (demo data,
// plus two civil servants made with the command line: one who may use
// only the data exchange registry, one who holds only staff.console):
// the frame in three languages (console name, the person signed in, the
// account link and log-out, the language switch keeping the address, skip
// link, main landmark, CSRF token), the menu filtered by permission with
// the current page marked, the way through the log-in page and back, the
// 403 and 404 pages inside the frame, log-out from the frame, the whole
// console by keyboard alone, axe-core, and no horizontal overflow on a
// phone (390 px) or at 200 % zoom (a 1280 px window is 640 CSS px wide),
// checked by the widths of the elements.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { run, startEgov } from '../lib/egov.mjs';
import { LANGS, axeSource, catalogue, launch, openPage } from './browser.mjs';

const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa'];
const ADMIN = { email: 'admin@demo.egov.mo', password: 'demo-admin-2026', name: 'Demo Administrator' };
const RESIDENT = { email: 'resident@demo.egov.mo', password: 'demo-resident-2026', name: 'Maria da Silva' };
const EDITOR = { email: 'editor@demo.egov.mo', password: 'demo-editor-2026' };
const REGISTRAR = { email: 'registrar@demo.egov.mo', password: 'registrar-pass-2026', name: '李大文 Lei Tai Man', role: 'exchange_admin' };
const CLERK = { email: 'clerk@demo.egov.mo', password: 'clerk-pass-2026', name: 'Ana Clerk', role: 'staff' };

let node;
let browser;

function cli(args, input) {
  const r = run([...args, '--data', node.dataDir, '--database', node.database], input === undefined ? {} : { input });
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
}

before(async () => {
  node = await startEgov();
  cli(['exchange', 'central', 'init']);
  for (const p of [REGISTRAR, CLERK]) {
    cli(['user', 'add', '--email', p.email, '--name', p.name, '--kind', 'staff', '--password-stdin'], `${p.password}\n`);
    cli(['role', 'grant', '--email', p.email, '--role', p.role, '--dept', 'GOV']);
  }
  browser = await launch();
  const ctx = await browser.newContext();
  await fillRegistry(ctx, await signIn(ctx, ADMIN));
  await ctx.close();
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

async function signIn(ctx, who) {
  const res = await ctx.request.post(`${node.url}/api/v1/identity/login`, { data: { email: who.email, password: who.password } });
  assert.equal(res.status(), 200);
  return (await res.json()).csrf;
}

const t = (lang, key) => catalogue[lang][key];
const titleOf = (lang, key) => t(lang, 'console.title').replace('{page}', t(lang, key));

// The menu as a person sees it: [text, href, aria-current].
async function menu(page) {
  return page.$$eval('nav.console-nav a', (as) => as.map((a) => [a.textContent.trim(), a.getAttribute('href'),
    a.getAttribute('aria-current')]));
}

async function ready(page) {
  await page.waitForSelector('[data-ready]:not([hidden])');
}

describe('the frame', () => {
  for (const lang of LANGS) {
    test(`in ${lang}: header, person, log-out, language switch, menu, landmarks`, async () => {
      const ctx = await browser.newContext();
      const csrf = await signIn(ctx, ADMIN);
      const { page, problems } = await openPage(ctx);
      const res = await page.goto(`${node.url}/staff/exchange?lang=${lang}&view=all`);
      assert.equal(res.status(), 200);
      assert.equal(res.headers()['cache-control'], 'no-store');
      await ready(page);
      const html = await res.text();
      assert.ok(!html.includes('{{') && !html.includes('<!--console:'), 'no slot left');
      assert.equal(await page.getAttribute('html', 'lang'), lang);
      assert.equal(await page.title(), titleOf(lang, 'staff.tools.exchange.title'));
      assert.equal((await page.textContent('.skip-link')).trim(), t(lang, 'skip.main'));
      assert.equal(await page.getAttribute('.skip-link', 'href'), '#main');
      assert.equal((await page.textContent('header .brand')).trim(), t(lang, 'console.name'));
      assert.equal(await page.getAttribute('header .brand', 'href'), '/staff');
      // The person, the way to their account and the log-out form with the
      // session's token, which the page's script finds in the head too.
      assert.equal((await page.textContent('.console-person__name strong')).trim(), ADMIN.name);
      assert.equal((await page.textContent('.console-person__label')).trim(), t(lang, 'console.person.label'));
      const account = page.locator('.console-person a[href="/account.html"]');
      assert.equal((await account.textContent()).trim(), t(lang, 'console.account'));
      assert.equal((await page.textContent('form.console-logout button')).trim(), t(lang, 'console.logout'));
      assert.equal(await page.getAttribute('form.console-logout', 'action'), '/staff/logout');
      assert.equal(await page.getAttribute('form.console-logout', 'method'), 'post');
      assert.equal(await page.getAttribute('form.console-logout input[name="csrf"]', 'value'), csrf);
      assert.equal(await page.getAttribute('meta[name="csrf-token"]', 'content'), csrf);
      // The language switch keeps the path and the rest of the query.
      for (const other of LANGS) {
        const link = page.locator(`.lang-switch a[hreflang="${other}"]`);
        assert.equal(await link.getAttribute('href'), `/staff/exchange?view=all&lang=${other}`);
        assert.equal((await link.textContent()).trim(), t(other, `lang.name.${other}`));
        assert.equal(await link.getAttribute('aria-current'), other === lang ? 'page' : 'false');
      }
      // The menu: its label, the pages the person may use, this one marked.
      assert.equal(await page.getAttribute('nav.console-nav', 'aria-label'), t(lang, 'console.nav.label'));
      assert.deepEqual(await menu(page), [
        [t(lang, 'console.home'), '/staff', null],
        [t(lang, 'staff.tools.exchange.title'), '/staff/exchange', 'page'],
      ]);
      // One main landmark holding the page's one h1; header and footer around it.
      assert.equal(await page.locator('main#main').count(), 1);
      assert.equal(await page.locator('h1').count(), 1);
      assert.equal(await page.locator('main#main h1').count(), 1);
      assert.equal(await page.locator('body > header').count(), 1);
      assert.equal(await page.locator('body > footer').count(), 1);
      assert.deepEqual(problems, []);

      // The landing page: the menu's pages as cards, itself marked.
      await page.goto(`${node.url}/staff?lang=${lang}`);
      assert.equal(await page.title(), t(lang, 'console.name'));
      assert.equal((await page.textContent('main h1')).trim(), t(lang, 'staff.heading'));
      assert.deepEqual((await menu(page)).map((m) => m[2]), ['page', null]);
      const cards = await page.$$eval('main .card', (cs) => cs.map((c) => [c.querySelector('a').textContent,
        c.querySelector('a').getAttribute('href'), c.querySelector('p').textContent]));
      assert.deepEqual(cards, [[t(lang, 'staff.tools.exchange.title'), '/staff/exchange', t(lang, 'staff.tools.exchange.text')]]);
      assert.deepEqual(problems, []);
      await ctx.close();
    });
  }

  test('the language switch keeps the page and its query, and the choice persists', async () => {
    const ctx = await browser.newContext({ locale: 'de-DE' });
    await signIn(ctx, ADMIN);
    const { page, problems } = await openPage(ctx);
    await page.goto(`${node.url}/staff/exchange?view=all`);
    await ready(page);
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-Hant');
    await Promise.all([page.waitForURL(/\/staff\/exchange\?view=all&lang=pt$/),
      page.getByRole('link', { name: 'Português' }).click()]);
    await ready(page);
    assert.equal(await page.getAttribute('html', 'lang'), 'pt');
    assert.equal((await page.textContent('h1')).trim(), t('pt', 'staff.exchange.heading'));
    await page.goto(`${node.url}/staff`);
    assert.equal(await page.getAttribute('html', 'lang'), 'pt', 'the lang cookie');
    assert.deepEqual(problems, []);
    await ctx.close();
  });
});

describe('the menu is filtered by permission', () => {
  test('only the data exchange: its entry, its card, its page', async () => {
    const ctx = await browser.newContext();
    await signIn(ctx, REGISTRAR);
    const { page, problems } = await openPage(ctx);
    let res = await page.goto(`${node.url}/staff?lang=en`);
    assert.equal(res.status(), 200);
    assert.equal((await page.textContent('.console-person__name strong')).trim(), REGISTRAR.name);
    assert.deepEqual(await menu(page), [['Overview', '/staff', 'page'], [t('en', 'staff.tools.exchange.title'), '/staff/exchange', null]]);
    assert.equal(await page.locator('main .card').count(), 1);
    res = await page.goto(`${node.url}/staff/exchange?lang=en`);
    assert.equal(res.status(), 200);
    await ready(page);
    assert.deepEqual(problems, []);
    await ctx.close();
  });

  test('only staff.console: the landing page without tools, the registry refused', async () => {
    const ctx = await browser.newContext();
    await signIn(ctx, CLERK);
    const page = await ctx.newPage();
    let res = await page.goto(`${node.url}/staff?lang=en`);
    assert.equal(res.status(), 200);
    assert.deepEqual(await menu(page), [['Overview', '/staff', 'page']]);
    assert.equal(await page.locator('main .card').count(), 0);
    assert.equal((await page.textContent('main .notice')).trim(), t('en', 'console.home.empty'));
    res = await page.goto(`${node.url}/staff/exchange?lang=en`);
    assert.equal(res.status(), 403);
    assert.equal((await page.textContent('main h1')).trim(), t('en', 'staff.forbidden.heading'));
    assert.deepEqual(await menu(page), [['Overview', '/staff', null]], 'nothing marked: the page is not theirs');
    await ctx.close();
  });

  test('no console permission at all: the 403 page, no menu', async () => {
    const ctx = await browser.newContext();
    await signIn(ctx, EDITOR);
    const page = await ctx.newPage();
    const res = await page.goto(`${node.url}/staff?lang=en`);
    assert.equal(res.status(), 403);
    assert.equal(await page.locator('nav.console-nav').count(), 0);
    assert.equal(await page.locator('form.console-logout').count(), 1, 'they can still log out');
    await ctx.close();
  });
});

describe('not signed in: to the log-in page and back', () => {
  for (const [target, back, lang] of [
    ['/staff/exchange?lang=pt', /\/staff\/exchange$/, 'pt'],
    ['/staff?view=cards&lang=en', /\/staff\?view=cards$/, 'en'],
  ]) {
    test(target, async () => {
      const ctx = await browser.newContext();
      const { page, problems } = await openPage(ctx);
      await page.goto(`${node.url}${target}`);
      const ret = encodeURIComponent(target.replace(/[?&]lang=[^&]*$/, ''));
      await page.waitForURL((u) => u.href === `${node.url}/login.html?lang=${lang}&return=${ret}`);
      assert.equal(await page.getAttribute('html', 'lang'), lang);
      await page.fill('#email', REGISTRAR.email);
      await page.fill('#password', REGISTRAR.password);
      await page.click('#login-form button[type=submit]');
      await page.waitForURL(back);
      // To the end: the page itself, in the frame, for this person.
      assert.equal(await page.getAttribute('html', 'lang'), lang);
      assert.equal((await page.textContent('.console-person__name strong')).trim(), REGISTRAR.name);
      if (target.startsWith('/staff/exchange')) {
        await ready(page);
        assert.equal((await page.textContent('h1')).trim(), t(lang, 'staff.exchange.heading'));
      } else {
        assert.equal((await page.textContent('h1')).trim(), t(lang, 'staff.heading'));
      }
      assert.deepEqual(problems, []);
      await ctx.close();
    });
  }
});

describe('refusals inside the frame', () => {
  for (const lang of LANGS) {
    test(`the 403 page in ${lang}`, async () => {
      const ctx = await browser.newContext();
      const csrf = await signIn(ctx, RESIDENT);
      const page = await ctx.newPage();
      const res = await page.goto(`${node.url}/staff/exchange?lang=${lang}`);
      assert.equal(res.status(), 403);
      assert.match(res.headers()['content-type'], /^text\/html/);
      assert.equal(await page.title(), titleOf(lang, 'staff.forbidden.title'));
      assert.equal((await page.textContent('main h1')).trim(), t(lang, 'staff.forbidden.heading'));
      // The frame is there: who is signed in, how to leave, the switch.
      assert.equal((await page.textContent('header .brand')).trim(), t(lang, 'console.name'));
      assert.equal((await page.textContent('.console-person__name strong')).trim(), RESIDENT.name);
      assert.equal(await page.getAttribute('form.console-logout input[name="csrf"]', 'value'), csrf);
      assert.equal(await page.locator(`.lang-switch a[hreflang="${lang}"][aria-current="page"]`).count(), 1);
      // A resident may use no console page: no menu, no script, no data.
      assert.equal(await page.locator('nav.console-nav').count(), 0);
      assert.equal(await page.locator('script[src="/js/staff-exchange.js"]').count(), 0);
      assert.ok(!(await page.content()).includes('data-ready'));
      await ctx.close();
    });
  }

  test('an unknown console page: 404 inside the frame; templates are not served on their own', async () => {
    const ctx = await browser.newContext();
    await signIn(ctx, ADMIN);
    const page = await ctx.newPage();
    for (const p of ['/staff/nope', '/staff/exchange.html', '/staff/frame.html', '/staff/exchange/more']) {
      const res = await page.goto(`${node.url}${p}?lang=en`);
      assert.equal(res.status(), 404, p);
      assert.equal(await page.title(), titleOf('en', 'console.not_found.title'), p);
      assert.equal((await page.textContent('main h1')).trim(), t('en', 'console.not_found.title'), p);
      assert.deepEqual((await menu(page)).map((m) => m[2]), [null, null], p);
    }
    await ctx.close();
  });
});

describe('log-out from the frame', () => {
  test('the button ends the session and says so', async () => {
    const ctx = await browser.newContext();
    await signIn(ctx, ADMIN);
    const { page, problems } = await openPage(ctx);
    await page.goto(`${node.url}/staff?lang=pt`);
    await Promise.all([page.waitForURL(/\/staff\/signed-out$/), page.click('form.console-logout button')]);
    assert.equal(await page.getAttribute('html', 'lang'), 'pt');
    assert.equal((await page.textContent('main h1')).trim(), t('pt', 'console.signed_out.title'));
    assert.equal(await page.title(), titleOf('pt', 'console.signed_out.title'));
    assert.equal(await page.locator('.console-person').count(), 0);
    assert.equal(await page.locator('meta[name="csrf-token"]').count(), 0);
    assert.equal(await page.locator('nav.console-nav').count(), 0);
    assert.equal(await page.getAttribute(`main a[href^="/login.html"]`, 'href'), '/login.html?return=%2Fstaff');
    assert.ok(!(await ctx.cookies(node.url)).some((c) => c.name === 'egov_sid'), 'the cookie is gone');
    assert.equal((await ctx.request.get(`${node.url}/api/v1/identity/me`)).status(), 401);
    await page.goto(`${node.url}/staff`);
    await page.waitForURL(/\/login\.html\?return=%2Fstaff$/);
    assert.deepEqual(problems, []);
    await ctx.close();
  });

  test('without the session\'s token nothing ends', async () => {
    const ctx = await browser.newContext();
    await signIn(ctx, ADMIN);
    const res = await ctx.request.post(`${node.url}/staff/logout`, { form: { csrf: 'not-the-token' }, maxRedirects: 0 });
    assert.equal(res.status(), 403);
    assert.equal((await res.json()).code, 'identity.csrf');
    assert.equal((await ctx.request.get(`${node.url}/api/v1/identity/me`)).status(), 200);
    await ctx.close();
  });
});

describe('keyboard only', () => {
  async function tab(page) {
    await page.keyboard.press('Tab');
    return page.evaluate(() => {
      const el = document.activeElement;
      const cs = getComputedStyle(el);
      return {
        text: (el.textContent || '').trim(), href: el.getAttribute('href'), tag: el.tagName,
        outline: cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0,
      };
    });
  }

  test('skip link, header, menu, a page, log-out, with a visible focus all the way', async () => {
    const ctx = await browser.newContext();
    await signIn(ctx, ADMIN);
    const { page, problems } = await openPage(ctx);
    await page.goto(`${node.url}/staff?lang=en`);

    // The skip link comes first, shows itself and takes you to the content.
    let f = await tab(page);
    assert.equal(f.href, '#main');
    assert.ok(f.outline);
    assert.ok(await page.isVisible('.skip-link'));
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'main');

    // From the top again: brand, account, log-out, languages, then the menu.
    await page.goto(`${node.url}/staff?lang=en`);
    const seen = [];
    for (let i = 0; i < 12; i++) {
      f = await tab(page);
      assert.ok(f.outline, `focus visible on ${f.tag} ${f.text}`);
      seen.push(f.href || f.text);
      if (f.href === '/staff/exchange') break;
    }
    assert.deepEqual(seen, ['#main', '/staff', '/account.html', t('en', 'console.logout'),
      '/staff?lang=zh-Hant', '/staff?lang=pt', '/staff?lang=en', '/staff', '/staff/exchange']);
    await Promise.all([page.waitForURL(/\/staff\/exchange$/), page.keyboard.press('Enter')]);
    await ready(page);
    assert.equal(await page.getAttribute('nav.console-nav a[href="/staff/exchange"]', 'aria-current'), 'page');

    // Log out with the keyboard.
    for (let i = 0; i < 6; i++) {
      f = await tab(page);
      if (f.tag === 'BUTTON') break;
    }
    assert.equal(f.text, t('en', 'console.logout'));
    assert.ok(f.outline);
    await Promise.all([page.waitForURL(/\/staff\/signed-out$/), page.keyboard.press('Enter')]);
    assert.equal((await page.textContent('main h1')).trim(), t('en', 'console.signed_out.title'));
    assert.deepEqual(problems, []);
    await ctx.close();
  });
});

// The registry with rows in every table, long identifiers and names, so
// that the widest page of the console is measured full.
async function fillRegistry(ctx, csrf) {
  const h = { 'X-CSRF-Token': csrf };
  const M = 'MO/GOV/DSAMA';
  const SUB = `${M}/REGISTO-CENTRAL-DE-PESSOAS`;
  const CLIENT = 'MO/GOV/DSI/APLICACAO-DE-IDENTIFICACAO';
  const calls = [
    ['members', { id: M, name: 'Direcção dos Serviços de Assuntos Marítimos e de Água 海事及水務局' }],
    ['members', { id: 'MO/GOV/DSI', name: 'Direcção dos Serviços de Identificação 身份證明局' }],
    ['subsystems', { id: SUB, gateway: 'https://gateway-dos-servicos-maritimos.gov.mo:5501' }],
    ['subsystems', { id: CLIENT, gateway: 'https://gateway-da-identificacao.gov.mo:5501' }],
    ['services', { id: `${SUB}/pessoas-registadas-e-moradas`, title: 'Pessoas registadas e moradas actualizadas diariamente', log: 'full', max_body: 16777216 }],
    ['access', { client: CLIENT, service: `${SUB}/pessoas-registadas-e-moradas`, methods: 'GET,POST,PUT,PATCH,DELETE', paths: '/pessoas/*,/moradas/*,/historico/*' }],
    ['event-types', { id: `${SUB}/pessoa-alterada-no-registo-central` }],
  ];
  for (const [kind, data] of calls) {
    const r = await ctx.request.post(`${node.url}/api/v1/exchange/${kind}`, { headers: h, data });
    assert.ok([200, 201].includes(r.status()), `${kind}: ${await r.text()}`);
  }
}

const MEASURED = [
  { path: '/staff', who: ADMIN },
  { path: '/staff/exchange', who: ADMIN, ready: true },
  { path: '/staff/exchange', who: RESIDENT, status: 403 },
  { path: '/staff/nope', who: ADMIN, status: 404 },
  { path: '/staff/signed-out' },
];

// The dark scheme of the landing, registry and 403 pages is a11y.test.mjs's.
describe('axe-core finds nothing', () => {
  for (const colorScheme of ['light', 'dark']) {
    for (const p of MEASURED.filter((m) => colorScheme === 'light' || m.status === 404 || !m.who)) {
      test(`${p.path} (${p.status || 200}), ${colorScheme}, every language`, async () => {
        for (const lang of LANGS) {
          const ctx = await browser.newContext({ bypassCSP: true, colorScheme });
          if (p.who) await signIn(ctx, p.who);
          const page = await ctx.newPage();
          const res = await page.goto(`${node.url}${p.path}?lang=${lang}`);
          assert.equal(res.status(), p.status || 200);
          if (p.ready) await ready(page);
          await page.addScriptTag({ path: axeSource });
          const result = await page.evaluate((tags) => window.axe.run(document, {
            runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'],
          }), TAGS);
          assert.deepEqual(result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(' ')}`), [],
            `${p.path} ${lang}`);
          await ctx.close();
        }
      });
    }
  }
});

describe('no horizontal overflow', () => {
  // 390 px: a phone. 640 x 400: a 1280 x 800 window at 200 % zoom.
  for (const viewport of [{ width: 390, height: 844 }, { width: 640, height: 400 }]) {
    for (const p of MEASURED) {
      test(`${p.path} (${p.status || 200}) at ${viewport.width} px, every language`, async () => {
        for (const lang of LANGS) {
          const ctx = await browser.newContext({ viewport });
          if (p.who) await signIn(ctx, p.who);
          const page = await ctx.newPage();
          await page.goto(`${node.url}${p.path}?lang=${lang}`);
          if (p.ready) await ready(page);
          const wide = await page.evaluate(() => {
            const cw = document.documentElement.clientWidth;
            const inside = (r) => r.left >= -0.5 && r.right <= cw + 0.5;
            // Cut off by a box that is itself inside the page (a visually
            // hidden text, a table head kept for screen readers): not seen.
            const clipped = (el) => {
              for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
                const cs = getComputedStyle(a);
                if ((cs.overflowX !== 'visible' || cs.clipPath !== 'none') && inside(a.getBoundingClientRect())) return true;
              }
              return false;
            };
            const out = [];
            if (document.documentElement.scrollWidth > cw) out.push(`document ${document.documentElement.scrollWidth}`);
            for (const el of document.querySelectorAll('body *')) {
              const r = el.getBoundingClientRect();
              if (r.width > 0 && !inside(r) && !clipped(el)) {
                out.push(`${el.tagName.toLowerCase()}.${el.className} ${Math.round(r.left)}..${Math.round(r.right)}`);
              }
            }
            return out;
          });
          assert.deepEqual(wide, [], `${p.path} ${lang} at ${viewport.width} px`);
          await ctx.close();
        }
      });
    }
  }
});
