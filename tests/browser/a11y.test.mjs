// Accessibility of every page in every language, in light and dark colour
// schemes: axe-core with the WCAG 2.0, 2.1 and 2.2 A and AA rules must find
// nothing. axe is injected as a script, which the pages' CSP rightly forbids,
// so only this context bypasses the CSP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEgov } from '../lib/egov.mjs';
import { LANGS, PAGES, axeSource, launch } from './browser.mjs';

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

for (const colorScheme of ['light', 'dark']) {
  for (const p of PAGES) {
    for (const lang of LANGS) {
      test(`axe: ${p} in ${lang}, ${colorScheme}`, async () => {
        const ctx = await browser.newContext({ bypassCSP: true, colorScheme, locale: 'de-DE' });
        const page = await ctx.newPage();
        await page.goto(`${node.url}${p}?lang=${lang}`);
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
