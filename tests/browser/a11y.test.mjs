// Accessibility of every page in every language, in light and dark colour
// schemes: axe-core with the WCAG 2.0, 2.1 and 2.2 A and AA rules must find
// nothing. axe is injected as a script, which the pages' CSP rightly forbids,
// so only this context bypasses the CSP. Pages behind a log-in (the staff
// console) are checked as the demo user who may see them, once their script
// has filled them in; the 403 page as a demo resident.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEgov } from '../lib/egov.mjs';
import { LANGS, PAGES, axeSource, launch } from './browser.mjs';

const SIGNED_IN = [
  { path: '/staff', who: { email: 'admin@demo.egov.mo', password: 'demo-admin-2026' } },
  { path: '/staff/exchange', who: { email: 'admin@demo.egov.mo', password: 'demo-admin-2026' },
    ready: '[data-ready]:not([hidden])' },
  { path: '/staff/exchange', who: { email: 'resident@demo.egov.mo', password: 'demo-resident-2026' },
    name: '/staff/exchange (403)' },
];

const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa'];

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

function describe(violations) {
  return violations.map((v) => `${v.id} (${v.impact}): ${v.help}\n${v.nodes.map((n) =>
    `    ${n.target.join(' ')}: ${n.failureSummary.replace(/\n/g, ' ')}`).join('\n')}`).join('\n');
}

const pages = [...PAGES.map((p) => ({ path: p })), ...SIGNED_IN];

for (const colorScheme of ['light', 'dark']) {
  for (const p of pages) {
    for (const lang of LANGS) {
      test(`axe: ${p.name || p.path} in ${lang}, ${colorScheme}`, async () => {
        const ctx = await browser.newContext({ bypassCSP: true, colorScheme, locale: 'de-DE' });
        if (p.who) {
          const res = await ctx.request.post(`${node.url}/api/v1/identity/login`, { data: p.who });
          assert.equal(res.status(), 200);
        }
        const page = await ctx.newPage();
        await page.goto(`${node.url}${p.path}?lang=${lang}`);
        if (p.ready) await page.waitForSelector(p.ready);
        await page.addScriptTag({ path: axeSource });
        const result = await page.evaluate((tags) => window.axe.run(document, {
          runOnly: { type: 'tag', values: tags },
          resultTypes: ['violations'],
        }), TAGS);
        assert.ok(result.passes.length + result.violations.length > 0 || result.inapplicable.length > 0,
          'axe ran');
        assert.equal(result.violations.length, 0, describe(result.violations));
        await ctx.close();
      });
    }
  }
}
