// Shared set-up for the browser tests: Debian's Chromium driven by
// playwright-core, the real server started by tests/lib/egov.mjs, the
// message catalogues the pages are rendered from, and a page wrapper that
// records every console error, page error, CSP violation and failed
// request, so a test can assert there were none.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { root } from '../lib/egov.mjs';

export const LANGS = ['zh-Hant', 'pt', 'en'];
export const PAGES = ['/', '/design.html'];

export const catalogue = Object.fromEntries(LANGS.map((l) =>
  [l, JSON.parse(readFileSync(path.join(root, 'web/i18n', `${l}.json`), 'utf8'))]));

export const axeSource = path.join(root, 'node_modules/axe-core/axe.min.js');

// Playwright gives every launch a fresh temporary profile; the flags keep
// Chromium from reaching anywhere but the server under test.
export function launch() {
  return chromium.launch({
    executablePath: process.env.EGOV_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// Opens a page in ctx and collects what went wrong on it.
export async function openPage(ctx) {
  const page = await ctx.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // The browser fetches the icon on its own and cancels that fetch when
    // the page navigates away (a log-out form, a link): not the page's fault.
    if (r.failure()?.errorText === 'net::ERR_ABORTED' && new URL(r.url()).pathname === '/favicon.svg') return;
    problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  // Reported by the browser even when the console message is suppressed.
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return { page, problems };
}
