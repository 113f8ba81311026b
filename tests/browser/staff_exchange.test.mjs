// The staff console's data exchange registry page in Chromium against a real
// node (demo data; the central signing key made with `egov exchange central
// init`): log in as the demo administrator through the log-in page the
// console sends you to, add a member, a subsystem, a service, an access right
// and an event type through the page's forms, see them listed (with a
// subsystem's certificate issued by the platform CA, and the published
// configuration's version), remove one, use the page by keyboard only, see a
// bad identifier refused with a translated message tied to its field (by the
// page, and by the server), and get the translated 403 page as a resident.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run, startEgov } from '../lib/egov.mjs';
import { LANGS, axeSource, catalogue, launch, openPage } from './browser.mjs';

const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa'];
const ADMIN = { email: 'admin@demo.egov.mo', password: 'demo-admin-2026' };
const RESIDENT = { email: 'resident@demo.egov.mo', password: 'demo-resident-2026' };
const M = 'MO/GOV/DSAJ';
const SUB = `${M}/REG`;
const SVC = `${SUB}/persons`;
const CLIENT_M = 'MO/GOV/DSB';
const CLIENT = `${CLIENT_M}/APP`;
const EVENT = `${SUB}/person-changed`;

let node;
let browser;

before(async () => {
  node = await startEgov();
  const init = run(['exchange', 'central', 'init', '--data', node.dataDir, '--database', node.database]);
  assert.equal(init.status, 0, init.stderr);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

async function signIn(ctx, who) {
  const res = await ctx.request.post(`${node.url}/api/v1/identity/login`, { data: who });
  assert.equal(res.status(), 200);
  return (await res.json()).csrf;
}

async function ready(page) {
  await page.waitForSelector('[data-ready]:not([hidden])');
}

// The text of a [data-msg] of the page's catalogue, with {name} filled.
function text(lang, key, vars = {}) {
  let t = catalogue[lang][key];
  for (const [k, v] of Object.entries(vars)) t = t.split(`{${k}}`).join(v);
  return t;
}

async function activeStatus(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    return el && el.matches('[data-status]') ? { kind: el.closest('section').dataset.kind, text: el.textContent } : null;
  });
}

async function rowIds(page, kind) {
  return page.$$eval(`section[data-kind="${kind}"] [data-rows] tr`, (rows) => rows.map((r) => r.dataset.id));
}

// Fills a form's fields by input id and submits it with the keyboard.
async function submit(page, fields) {
  let last;
  for (const [id, value] of Object.entries(fields)) {
    if (await page.$eval(`#${id}`, (e) => e.tagName === 'SELECT')) await page.selectOption(`#${id}`, value);
    else await page.fill(`#${id}`, value);
    last = id;
  }
  await page.focus(`#${last}`);
  await page.keyboard.press('Enter');
}

describe('who may open the page', () => {
  test('without a session: the log-in page, then back to the console', async () => {
    const ctx = await browser.newContext();
    const { page, problems } = await openPage(ctx);
    await page.goto(`${node.url}/staff/exchange?lang=pt`);
    await page.waitForURL(/\/login\.html\?lang=pt&return=%2Fstaff%2Fexchange$/);
    await page.fill('#email', ADMIN.email);
    await page.fill('#password', ADMIN.password);
    await page.click('#login-form button[type=submit]');
    await page.waitForURL(/\/staff\/exchange$/);
    await ready(page);
    assert.equal((await page.textContent('h1')).trim(), catalogue.pt['staff.exchange.heading']);
    assert.deepEqual(problems, []);
    await ctx.close();
  });

  for (const lang of LANGS) {
    test(`a resident gets the 403 page in ${lang}`, async () => {
      const ctx = await browser.newContext();
      await signIn(ctx, RESIDENT);
      const page = await ctx.newPage();
      const res = await page.goto(`${node.url}/staff/exchange?lang=${lang}`);
      assert.equal(res.status(), 403);
      assert.equal(await page.getAttribute('html', 'lang'), lang);
      assert.equal((await page.textContent('h1')).trim(), catalogue[lang]['staff.forbidden.heading']);
      assert.ok(!(await page.content()).includes('data-ready'), 'not the console');
      // The API says the same.
      const api = await ctx.request.get(`${node.url}/api/v1/exchange/members`);
      assert.equal(api.status(), 403);
      const landing = await page.goto(`${node.url}/staff`);
      assert.equal(landing.status(), 403);
      await ctx.close();
    });
  }
});

test('add a member, subsystem, service, access right and event type; list them; remove one', async () => {
  const ctx = await browser.newContext();
  const csrf = await signIn(ctx, ADMIN);
  const { page, problems } = await openPage(ctx);
  await page.goto(`${node.url}/staff/exchange?lang=en`);
  await ready(page);
  assert.ok(!(await page.content()).includes('{{'), 'no unrendered keys');
  const v0 = Number(await page.textContent('[data-conf="registry_version"]'));
  assert.equal(await page.isVisible('[data-conf="version"]'), true, 'a configuration is published');
  for (const kind of ['members', 'subsystems', 'services', 'access', 'event-types']) {
    assert.equal(await page.isVisible(`section[data-kind="${kind}"] [data-empty]`), true, `${kind} empty`);
  }

  const steps = [
    ['members', { 'member-id': M, 'member-name': 'Legal Affairs Bureau' }, M],
    ['members', { 'member-id': CLIENT_M, 'member-name': 'Public Security Police' }, CLIENT_M],
    ['subsystems', { 'subsystem-id': SUB, 'subsystem-gateway': 'https://gw.dsaj.gov.mo:5501' }, SUB],
    ['subsystems', { 'subsystem-id': CLIENT, 'subsystem-gateway': 'https://gw.dsb.gov.mo:5501' }, CLIENT],
    ['services', { 'service-id': SVC, 'service-title': 'Persons', 'service-log': 'digest', 'service-max-body': '65536' }, SVC],
    ['access', { 'access-client': CLIENT, 'access-service': SVC, 'access-methods': 'GET', 'access-paths': '/persons/*' },
      `${CLIENT} → ${SVC}`],
    ['event-types', { 'event-id': EVENT }, EVENT],
  ];
  for (const [kind, fields, id] of steps) {
    await submit(page, fields);
    await page.waitForFunction((k) => document.activeElement?.matches(`section[data-kind="${k}"] [data-status]`), kind);
    assert.deepEqual(await activeStatus(page), { kind, text: text('en', 'staff.exchange.added', { id }) });
    assert.ok((await rowIds(page, kind)).includes(id), `${id} listed`);
    // The form is ready for the next one.
    const first = Object.keys(fields)[0];
    assert.equal(await page.inputValue(`#${first}`), '');
  }
  assert.deepEqual(await rowIds(page, 'members'), [M, CLIENT_M]);
  const svcRow = await page.$$eval('section[data-kind="services"] [data-rows] tr td', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(svcRow.slice(0, 4), [SVC, 'Persons', catalogue.en['staff.exchange.log.digest'],
    text('en', 'staff.exchange.bytes', { n: '65,536' })]);
  const accRow = await page.$$eval('section[data-kind="access"] [data-rows] tr td', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(accRow.slice(0, 4), [CLIENT, SVC, 'GET', '/persons/*']);
  const v1 = Number(await page.textContent('[data-conf="registry_version"]'));
  assert.equal(v1, v0 + steps.length, 'every change bumps the registry version');
  assert.equal(Number(await page.textContent('[data-conf="version"]')), v1, 'and is published');

  // A certificate issued by the platform CA shows with its status and expiry.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'egov-staff-'));
  try {
    const key = path.join(dir, 'k.pem');
    const csr = path.join(dir, 'r.csr');
    const o = spawnSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', key, '-subj', '/CN=REG', '-out', csr], { encoding: 'utf8' });
    assert.equal(o.status, 0, o.stderr);
    const r = await ctx.request.post(`${node.url}/api/v1/exchange/certs`, {
      headers: { 'X-CSRF-Token': csrf }, data: { subsystem: SUB, usage: 'sign', csr: readFileSync(csr, 'utf8') },
    });
    assert.equal(r.status(), 201, await r.text());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await page.reload();
  await ready(page);
  const certCell = await page.textContent(`section[data-kind="subsystems"] tr[data-id="${SUB}"] .cert-list`);
  assert.match(certCell, new RegExp(catalogue.en['staff.exchange.cert.usage.sign']));
  assert.match(certCell, new RegExp(catalogue.en['staff.exchange.cert.good']));
  assert.match(certCell, /until /);

  // Remove the access right: its row goes, focus lands on what happened.
  const name = `${CLIENT} → ${SVC}`;
  await page.click(`section[data-kind="access"] button[aria-label="${catalogue.en['staff.exchange.remove']} ${name}"]`);
  await page.waitForFunction(() => document.activeElement?.matches('section[data-kind="access"] [data-status]'));
  assert.deepEqual(await activeStatus(page), { kind: 'access', text: text('en', 'staff.exchange.removed', { id: name }) });
  assert.deepEqual(await rowIds(page, 'access'), []);
  assert.equal(await page.isVisible('section[data-kind="access"] [data-empty]'), true);
  const list = await ctx.request.get(`${node.url}/api/v1/exchange/access`);
  assert.deepEqual((await list.json()).items, []);

  // A member that still has subsystems is refused, and the page says why.
  await page.click(`section[data-kind="members"] button[aria-label="${catalogue.en['staff.exchange.remove']} ${M}"]`);
  await page.waitForFunction(() => document.activeElement?.matches('section[data-kind="members"] [data-form-errors]'));
  assert.equal((await page.textContent('section[data-kind="members"] .error-summary__list')).trim(),
    catalogue.en['problem.exchange.in_use']);
  assert.ok((await rowIds(page, 'members')).includes(M));

  // The API's refusal (409) is the only failed request.
  assert.deepEqual(problems.filter((p) => !/(HTTP |status of )409/.test(p)), []);

  // With data in every table, axe finds nothing in any language.
  for (const lang of LANGS) {
    const c2 = await browser.newContext({ bypassCSP: true });
    await signIn(c2, ADMIN);
    const p2 = await c2.newPage();
    await p2.goto(`${node.url}/staff/exchange?lang=${lang}`);
    await ready(p2);
    assert.equal((await p2.textContent('h1')).trim(), catalogue[lang]['staff.exchange.heading']);
    await p2.addScriptTag({ path: axeSource });
    const result = await p2.evaluate((tags) => window.axe.run(document, {
      runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'],
    }), TAGS);
    assert.deepEqual(result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(' ')}`), [], lang);
    await c2.close();
  }
  await ctx.close();
});

for (const lang of LANGS) {
  test(`a bad identifier is refused in ${lang}, with the message tied to its field`, async () => {
    const ctx = await browser.newContext();
    await signIn(ctx, ADMIN);
    const { page, problems } = await openPage(ctx);
    await page.goto(`${node.url}/staff/exchange?lang=${lang}`);
    await ready(page);
    const want = catalogue[lang]['staff.exchange.error.id_member'];

    async function fieldError(inputId) {
      return page.evaluate((id) => {
        const input = document.getElementById(id);
        const ids = (input.getAttribute('aria-describedby') || '').split(' ');
        const err = document.getElementById(`${id}-error`);
        return {
          invalid: input.getAttribute('aria-invalid'),
          described: ids.includes(`${id}-error`) && ids.includes(`${id}-hint`),
          text: err ? err.textContent.trim() : null,
          summaryFocused: document.activeElement.matches('[data-form-errors]'),
          link: document.activeElement.querySelector?.('.error-summary__list a')?.getAttribute('href'),
        };
      }, inputId);
    }

    // Caught by the page: not three parts.
    await submit(page, { 'member-id': 'not an id', 'member-name': 'X' });
    let e = await fieldError('member-id');
    assert.equal(e.invalid, 'true');
    assert.ok(e.described, 'error and hint named by aria-describedby');
    assert.equal(e.text, `${catalogue[lang]['form.error.prefix']} ${want}`);
    assert.ok(e.summaryFocused);
    assert.equal(e.link, '#member-id');
    // The summary's link takes the keyboard to the field.
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'member-id');

    // Caught by the server: well formed but of another instance.
    await submit(page, { 'member-id': 'XX/GOV/ABC', 'member-name': 'X' });
    await page.waitForFunction(() => document.activeElement.matches('[data-form-errors]'));
    e = await fieldError('member-id');
    assert.equal(e.invalid, 'true');
    assert.equal(e.text, `${catalogue[lang]['form.error.prefix']} ${want}`);
    // A subsystem of a member that does not exist: the server's title, translated.
    await submit(page, { 'subsystem-id': 'MO/GOV/NONE/APP', 'subsystem-gateway': 'https://gw.example:5501' });
    await page.waitForFunction(() => document.activeElement.matches('section[data-kind="subsystems"] [data-form-errors]'));
    e = await fieldError('subsystem-id');
    assert.equal(e.text, `${catalogue[lang]['form.error.prefix']} ${catalogue[lang]['problem.exchange.unknown_member']}`);
    // Fixing the field clears its error on the next try.
    await submit(page, { 'member-id': `MO/GOV/L${LANGS.indexOf(lang)}`, 'member-name': 'Fixed' });
    await page.waitForFunction(() => document.activeElement.matches('section[data-kind="members"] [data-status]'));
    e = await fieldError('member-id');
    assert.equal(e.invalid, null);
    assert.equal(e.text, null);
    assert.deepEqual(problems.filter((p) => !/(HTTP |status of )(400|404)/.test(p)), []);
    await ctx.close();
  });
}

test('keyboard only: add and remove with a visible focus all the way', async () => {
  const ctx = await browser.newContext();
  await signIn(ctx, ADMIN);
  const { page, problems } = await openPage(ctx);
  await page.goto(`${node.url}/staff/exchange?lang=en`);
  await ready(page);
  // From the top of the page, Tab reaches the member form.
  const seen = [];
  for (let i = 0; i < 60; i++) {
    await page.keyboard.press('Tab');
    const info = await page.evaluate(() => {
      const el = document.activeElement;
      const cs = getComputedStyle(el);
      return { id: el.id, outline: cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0 };
    });
    assert.ok(info.outline, `focus visible on ${info.id}`);
    seen.push(info.id);
    if (info.id === 'member-id') break;
  }
  assert.equal(seen.at(-1), 'member-id');
  await page.keyboard.type('MO/GOV/KEYS');
  await page.keyboard.press('Tab');
  await page.keyboard.type('Keyboard Bureau');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement?.matches('section[data-kind="members"] [data-status]'));
  // The member table follows the status message, so Tab reaches its rows' buttons.
  let label = null;
  for (let i = 0; i < 20 && label !== 'Remove MO/GOV/KEYS'; i++) {
    await page.keyboard.press('Tab');
    label = await page.evaluate(() => document.activeElement.getAttribute('aria-label'));
  }
  assert.equal(label, 'Remove MO/GOV/KEYS');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement?.matches('section[data-kind="members"] [data-status]'));
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Removed MO/GOV/KEYS.');
  assert.ok(!(await rowIds(page, 'members')).includes('MO/GOV/KEYS'));
  assert.deepEqual(problems, []);
  await ctx.close();
});
