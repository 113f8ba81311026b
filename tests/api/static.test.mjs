// The static front end: pages rendered per language (zh-Hant by default),
// the lang cookie, ETag/304, Vary, MIME types, HEAD, and 404 problems.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { backends } from '../lib/egov.mjs';
import { assertProblem, assertSecurityHeaders, raw, rawGet, request, start, stopClean } from './lib/http.mjs';
import { assertConforms } from './lib/openapi.mjs';

const htmlLang = (text) => /<html[^>]*\slang="([^"]+)"/i.exec(text)?.[1];

for (const backend of backends()) {
  describe(`static files (${backend})`, () => {
    let node;
    before(async () => { node = await start(backend, 'static'); });
    after(async () => { await stopClean(node); });

    test('GET / is the home page in zh-Hant by default', async () => {
      const r = await request(node, '/');
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /^text\/html\b/);
      assert.equal(htmlLang(r.text), 'zh-Hant');
      assert.equal(r.headers.get('content-language'), 'zh-Hant');
      assert.ok(!r.text.includes('{{'), 'no unrendered template keys');
      const vary = (r.headers.get('vary') ?? '').toLowerCase();
      assert.ok(vary.includes('accept-language'), `Vary: ${vary}`);
      assertConforms('GET', '/', r);
      assertSecurityHeaders(r);
    });

    test('language from ?lang (which sets the cookie), the cookie, and Accept-Language', async () => {
      const pt = await request(node, '/?lang=pt');
      assert.equal(pt.status, 200);
      assert.equal(htmlLang(pt.text), 'pt');
      const cookie = pt.headers.get('set-cookie') ?? '';
      assert.match(cookie, /(^|,\s*)lang=pt(;|$)/, `Set-Cookie: ${cookie}`);
      assert.match(cookie, /Path=\//i);
      assert.match(cookie, /SameSite=(Lax|Strict)/i);
      const withCookie = await request(node, '/', { headers: { Cookie: 'lang=pt' } });
      assert.equal(htmlLang(withCookie.text), 'pt', 'the lang cookie is honoured');
      const en = await request(node, '/', { headers: { 'Accept-Language': 'en-GB,en;q=0.9' } });
      assert.equal(htmlLang(en.text), 'en');
      assert.equal(en.headers.get('content-language'), 'en');
      const override = await request(node, '/?lang=zh-Hant', { headers: { 'Accept-Language': 'en', Cookie: 'lang=pt' } });
      assert.equal(htmlLang(override.text), 'zh-Hant', '?lang wins');
      const bogus = await request(node, '/', { headers: { Cookie: 'lang=xx' } });
      assert.equal(htmlLang(bogus.text), 'zh-Hant', 'an unknown cookie value is ignored');
      assert.notEqual(pt.headers.get('etag'), en.headers.get('etag'), 'each language has its own ETag');
    });

    test('ETag and If-None-Match give 304 with no body', async () => {
      for (const p of ['/', '/css/egov.css', '/?lang=en']) {
        const r = await request(node, p);
        assert.equal(r.status, 200);
        const etag = r.headers.get('etag');
        assert.match(etag ?? '', /^"[^"]+"$/, `${p}: strong ETag`);
        const nm = await request(node, p, { headers: { 'If-None-Match': etag } });
        assert.equal(nm.status, 304, p);
        assert.equal(nm.text, '');
        assert.equal(nm.headers.get('etag'), etag, `${p}: 304 repeats the ETag`);
        const other = await request(node, p, { headers: { 'If-None-Match': '"nope"' } });
        assert.equal(other.status, 200);
      }
    });

    test('If-None-Match follows RFC 9110: a list of tags, weak comparison, *', async () => {
      const etag = (await request(node, '/css/egov.css')).headers.get('etag');
      for (const inm of [`"x", ${etag}`, `W/${etag}`, '*']) {
        const r = await request(node, '/css/egov.css', { headers: { 'If-None-Match': inm } });
        assert.equal(r.status, 304, `If-None-Match: ${inm}`);
      }
    });

    test('MIME types of assets', async () => {
      const types = { '/css/egov.css': /^text\/css\b/, '/js/egov.js': /^(text|application)\/javascript\b/, '/favicon.svg': /^image\/svg\+xml\b/, '/index.html': /^text\/html\b/ };
      for (const [p, re] of Object.entries(types)) {
        const r = await request(node, p);
        assert.equal(r.status, 200, p);
        assert.match(r.headers.get('content-type') ?? '', re, p);
        assertSecurityHeaders(r, p);
      }
    });

    test('a missing file is a 404 problem; catalogues and templates are not files to serve', async () => {
      for (const p of ['/missing.html', '/css/missing.css', '/nope/', '/.git/config', '/index.html.bak']) {
        const r = await request(node, p);
        assertProblem(r, { status: 404, code: 'not_found' });
      }
    });

    test('HEAD / answers like GET without a body', async () => {
      const g = await request(node, '/');
      const r = await raw(node.port, 'HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeoutMs: 3000 });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('etag'), g.headers.get('etag'));
      assert.match(r.headers.get('content-type') ?? '', /^text\/html\b/);
      const afterHead = r.raw.slice(r.raw.indexOf('\r\n\r\n') + 4);
      assert.equal(afterHead, '', 'no body after HEAD');
      const f = await request(node, '/', { method: 'HEAD' });
      assert.equal(f.status, 200);
      assert.equal(f.text, '');
    });

    test('the home page and its assets load over a raw connection too', async () => {
      const r = await raw(node.port, rawGet('/css/egov.css'));
      assert.equal(r.status, 200);
      assert.ok(r.text.length > 0);
    });
  });
}
