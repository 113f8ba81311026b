// The HTTP kernel: security headers, request ids, language negotiation,
// problem documents, routing errors (404/405/415/413/414/431), malformed
// requests and hostile request targets (raw sockets, since fetch would
// normalise them).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { backends } from '../lib/egov.mjs';
import {
  adminConfig, assertProblem, assertSecurityHeaders, auth, catalogue, LANGS, raw, rawGet, request, start, stopClean,
} from './lib/http.mjs';
import { assertConforms } from './lib/openapi.mjs';

// Codes the kernel and the info module answer with; each needs a title in
// every catalogue.
const KERNEL_CODES = [
  'not_found', 'method_not_allowed', 'unsupported_media_type', 'payload_too_large', 'uri_too_long',
  'header_fields_too_large', 'unauthorized', 'forbidden', 'unavailable', 'internal', 'query.invalid',
  'validation.invalid_field', 'uri.dot_segment', 'uri.encoded_slash', 'uri.nul', 'uri.backslash',
  'json.malformed', 'json.invalid_utf8', 'json.too_deep', 'json.not_object', 'json.unknown_field',
  'json.duplicate_field', 'json.missing_field', 'json.wrong_type', 'json.too_long', 'json.out_of_range',
  'json.nul', 'transfer_encoding_unsupported',
];

const validNotice = () => ({
  category: 'news',
  title: { 'zh-Hant': '標題', pt: 'Título', en: 'Title' },
  body: { 'zh-Hant': '內容', pt: 'Conteúdo', en: 'Body' },
});

test('every catalogue has a title for every kernel problem code', () => {
  for (const lang of LANGS) {
    const cat = catalogue(lang);
    const missing = KERNEL_CODES.filter((c) => typeof cat[`problem.${c}`] !== 'string' || !cat[`problem.${c}`]);
    assert.deepEqual(missing, [], `web/i18n/${lang}.json lacks problem titles`);
  }
});

for (const backend of backends()) {
  describe(`kernel (${backend})`, () => {
    let node;
    before(async () => { node = await start(backend, 'kernel', { config: adminConfig() }); });
    after(async () => { await stopClean(node); });

    test('security headers on JSON, problem and HEAD answers', async () => {
      for (const [method, p] of [['GET', '/healthz'], ['GET', '/api/v1/version'], ['GET', '/no/such/route'],
        ['HEAD', '/healthz'], ['DELETE', '/healthz']]) {
        const r = await request(node, p, { method });
        assertSecurityHeaders(r, `${method} ${p}`);
      }
    });

    test('X-Request-Id: a valid client id is echoed, anything else replaced', async () => {
      const good = ['abc-123_X.y', 'a', 'Z'.repeat(64)];
      for (const id of good) {
        const r = await request(node, '/healthz', { headers: { 'X-Request-Id': id } });
        assert.equal(r.headers.get('x-request-id'), id);
      }
      const bad = ['Z'.repeat(65), 'has space', 'semi;colon', 'quote"d', 'slash/x', '<script>'];
      const seen = new Set();
      for (const id of bad) {
        const r = await request(node, '/no-such-page', { headers: { 'X-Request-Id': id } });
        const got = r.headers.get('x-request-id');
        assert.notEqual(got, id, `bad id ${JSON.stringify(id)} was echoed`);
        assert.match(got ?? '', /^[A-Za-z0-9._-]{1,64}$/);
        assert.equal(r.json?.request_id, got, 'problem request_id equals the header');
        seen.add(got);
      }
      assert.equal(seen.size, bad.length, 'generated ids are unique');
      // Non-ASCII bytes can only be sent raw.
      const r = await raw(node.port, rawGet('/healthz', 'X-Request-Id: caf\xc3\xa9\r\n'));
      assert.equal(r.status, 200);
      assert.notEqual(r.headers.get('x-request-id'), 'caf\xc3\xa9');
      assert.match(r.headers.get('x-request-id') ?? '', /^[A-Za-z0-9._-]{1,64}$/);
    });

    test('unknown route: 404 not_found problem with instance and request id', async () => {
      const r = await request(node, '/api/v1/no-such-thing', { headers: { 'X-Request-Id': 'req-404' } });
      const p = assertProblem(r, { status: 404, code: 'not_found', instance: '/api/v1/no-such-thing' });
      assert.equal(p.request_id, 'req-404');
    });

    test('language: ?lang, then Accept-Language, else zh-Hant', async () => {
      const cases = [
        [{}, '', 'zh-Hant'],
        [{}, '?lang=pt', 'pt'],
        [{}, '?lang=en', 'en'],
        [{}, '?lang=zh-Hant', 'zh-Hant'],
        [{ 'Accept-Language': 'en' }, '', 'en'],
        [{ 'Accept-Language': 'pt-PT,pt;q=0.9' }, '', 'pt'],
        [{ 'Accept-Language': 'fr, de;q=0.5' }, '', 'zh-Hant'],
        [{ 'Accept-Language': 'en;q=0.2, pt;q=0.8' }, '', 'pt'],
        [{ 'Accept-Language': 'zh-TW' }, '', 'zh-Hant'],
        [{ 'Accept-Language': 'pt' }, '?lang=en', 'en'],
      ];
      for (const [headers, q, lang] of cases) {
        const r = await request(node, `/nowhere${q}`, { headers });
        assertProblem(r, { status: 404, code: 'not_found', lang });
        assert.equal(r.headers.get('content-language'), lang, `${JSON.stringify(headers)} ${q}`);
      }
      const ok = await request(node, '/api/v1/version?lang=pt');
      assert.equal(ok.headers.get('content-language'), 'pt');
    });

    test('known path, wrong method: 405 with Allow (HEAD wherever GET)', async () => {
      const cases = [
        ['DELETE', '/healthz', ['GET', 'HEAD']],
        ['POST', '/api/v1/version', ['GET', 'HEAD']],
        ['PUT', '/api/v1/notices', ['GET', 'HEAD', 'POST']],
        ['DELETE', '/api/v1/notices/0190a0b0-0000-7000-8000-000000000000', ['GET', 'HEAD']],
        ['POST', '/metrics', ['GET', 'HEAD']],
      ];
      for (const [method, p, allow] of cases) {
        const r = await request(node, p, { method, headers: auth });
        assertProblem(r, { status: 405, code: 'method_not_allowed' });
        const got = (r.headers.get('allow') ?? '').split(',').map((s) => s.trim()).filter(Boolean).sort();
        assert.deepEqual(got, [...allow].sort(), `${method} ${p}: Allow`);
        assertConforms(method, p, r);
      }
      const head = await request(node, '/api/v1/version', { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.text, '');
    });

    test('415: a JSON route refuses another Content-Type', async () => {
      for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx']) {
        const r = await request(node, '/api/v1/notices', {
          method: 'POST', headers: { ...auth, 'Content-Type': ct }, body: JSON.stringify(validNotice()),
        });
        assertProblem(r, { status: 415, code: 'unsupported_media_type' });
      }
      // No Content-Type at all with a body.
      const r = await raw(node.port, 'POST /api/v1/notices HTTP/1.1\r\nHost: x\r\nConnection: close\r\n'
        + `Authorization: ${auth.Authorization}\r\nContent-Length: 2\r\n\r\n{}`);
      assertProblem(r, { status: 415, code: 'unsupported_media_type' });
      // Parameters on the right type are fine.
      const ok = await request(node, '/api/v1/notices', {
        method: 'POST', headers: { ...auth, 'Content-Type': 'application/json; charset=utf-8' }, body: JSON.stringify(validNotice()),
      });
      assert.equal(ok.status, 201, ok.text);
    });

    test('413: body over the route limit, by Content-Length and while reading chunks', async () => {
      const big = JSON.stringify({ ...validNotice(), body: { 'zh-Hant': 'x'.repeat(17000), pt: 'x', en: 'x' } });
      const r = await request(node, '/api/v1/notices', { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: big });
      assertProblem(r, { status: 413, code: 'payload_too_large' });
      // Content-Length alone decides: the server answers without waiting for the body.
      const cl = await raw(node.port, 'POST /api/v1/notices HTTP/1.1\r\nHost: x\r\nConnection: close\r\n'
        + `Authorization: ${auth.Authorization}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{`, { timeoutMs: 3000 });
      assert.equal(cl.timedOut, false, 'server waited for a body it must refuse');
      assertProblem(cl, { status: 413, code: 'payload_too_large' });
      // GET routes take no body at all.
      const g = await raw(node.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{"a":');
      assert.ok([400, 413, 415].includes(g.status), `a body on GET /healthz: ${g.status}`);
    });

    test('413: a chunked body is refused once it grows past the limit', async () => {
      const chunk = 'a'.repeat(4096);
      const pieces = ['POST /api/v1/notices HTTP/1.1\r\nHost: x\r\nConnection: close\r\n'
        + `Authorization: ${auth.Authorization}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`];
      for (let i = 0; i < 6; i++) pieces.push(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      pieces.push('0\r\n\r\n');
      const ch = await raw(node.port, pieces, { paceMs: 50 });
      assertProblem(ch, { status: 413, code: 'payload_too_large' });
    });

    test('a body to an unknown path or with a wrong method: 404 / 405, not 413', async () => {
      // The router decides before the body limit: an integrator who posts
      // to a wrong URL learns that, not that the body was too large.
      const head = (line) => `${line}\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n`;
      const nf = await raw(node.port, `${head('POST /api/v1/no-such-thing HTTP/1.1')}Content-Length: 2\r\n\r\n{}`);
      assertProblem(nf, { status: 404, code: 'not_found', instance: '/api/v1/no-such-thing' });
      const wm = await raw(node.port, `${head('PUT /api/v1/version HTTP/1.1')}Content-Length: 2\r\n\r\n{}`);
      assertProblem(wm, { status: 405, code: 'method_not_allowed' });
      assert.deepEqual((wm.headers.get('allow') ?? '').split(',').map((x) => x.trim()).sort(), ['GET', 'HEAD']);
      const ch = await raw(node.port, `${head('DELETE /api/v1/notices HTTP/1.1')}Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`);
      assertProblem(ch, { status: 405, code: 'method_not_allowed' });
      const f = await request(node, '/api/v1/nothing-here', { method: 'POST', json: { a: 1 } });
      assertProblem(f, { status: 404, code: 'not_found' });
      // A matched route that takes no body still refuses one.
      const g = await raw(node.port, `${head('POST /api/v1/notices HTTP/1.1')}Authorization: ${auth.Authorization}\r\nContent-Length: 10000000\r\n\r\n{`, { timeoutMs: 3000 });
      assertProblem(g, { status: 413, code: 'payload_too_large' });
    });

    test('414: request target over 4096 bytes', async () => {
      const ok = await request(node, `/healthz?x=${'a'.repeat(4000)}`);
      assert.equal(ok.status, 200, 'a 4 KiB target is accepted');
      const r = await request(node, `/healthz?x=${'a'.repeat(4100)}`);
      assertProblem(r, { status: 414, code: 'uri_too_long' });
      const r2 = await raw(node.port, rawGet(`/${'b'.repeat(5000)}`));
      assertProblem(r2, { status: 414, code: 'uri_too_long' });
    });

    test('431: more than 64 headers', async () => {
      let extra = '';
      for (let i = 0; i < 70; i++) extra += `X-Extra-${i}: ${i}\r\n`;
      const r = await raw(node.port, rawGet('/healthz', extra));
      assertProblem(r, { status: 431, code: 'header_fields_too_large' });
      let fine = '';
      for (let i = 0; i < 40; i++) fine += `X-Extra-${i}: ${i}\r\n`;
      const ok = await raw(node.port, rawGet('/healthz', fine));
      assert.equal(ok.status, 200, 'forty headers are fine');
    });

    test('431: more than 16 KiB of headers', async () => {
      const r = await raw(node.port, rawGet('/healthz', `X-Big: ${'c'.repeat(17 * 1024)}\r\n`));
      assertProblem(r, { status: 431, code: 'header_fields_too_large' });
      const spread = Array.from({ length: 20 }, (_, i) => `X-Part-${i}: ${'d'.repeat(1000)}\r\n`).join('');
      const r2 = await raw(node.port, rawGet('/healthz', spread));
      assertProblem(r2, { status: 431, code: 'header_fields_too_large' });
      const ok = await raw(node.port, rawGet('/healthz', `X-Big: ${'c'.repeat(8 * 1024)}\r\n`));
      assert.equal(ok.status, 200, '8 KiB of headers are fine');
    });

    test('malformed HTTP: 400 and the server keeps serving', async () => {
      for (const bad of ['GARBAGE\r\n\r\n', 'GET\r\n\r\n', 'GET / HTTP/9.9\r\nHost: x\r\n\r\n',
        'GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n', 'GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n',
        'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n']) {
        const r = await raw(node.port, bad, { timeoutMs: 3000 });
        // libmicrohttpd answers most of these itself (400/505), and drops
        // the connection on a request line it cannot split at all.
        assert.ok([400, 505].includes(r.status) || (r.status === 0 && r.closed),
          `${JSON.stringify(bad)}: got ${r.status} ${r.raw.slice(0, 100)}${r.timedOut ? ' (no answer in 3 s)' : ''}`);
      }
      // Binary bytes before the method: never a success, and others are still served.
      const bin = await raw(node.port, Buffer.from([0, 1, 2, 0x20, 0x2f, 0x20, 0x0d, 0x0a, 0x0d, 0x0a]), { timeoutMs: 1000 });
      assert.ok(bin.status === 0 || bin.status >= 400, `binary request line: ${bin.status}`);
      const r = await request(node, '/healthz');
      assert.equal(r.status, 200);
    });

    test('path traversal and hostile paths are refused with the reason', async () => {
      const cases = [
        ['/../etc/passwd', 'uri.dot_segment'],
        ['/css/../../etc/passwd', 'uri.dot_segment'],
        ['/%2e%2e/etc/passwd', 'uri.dot_segment'],
        ['/%2E%2E/%2E%2E/etc/passwd', 'uri.dot_segment'],
        ['/./index.html', 'uri.dot_segment'],
        ['/a/%2F', 'uri.encoded_slash'],
        ['/css%2Fegov.css', 'uri.encoded_slash'],
        ['/a%5C..%5Cetc', 'uri.encoded_slash'],
        ['/%00', 'uri.nul'],
        ['/index.html%00.css', 'uri.nul'],
        ['/a\\b', 'uri.backslash'],
        ['/..\\..\\etc\\passwd', null],
      ];
      for (const [target, code] of cases) {
        const r = await raw(node.port, rawGet(target));
        assert.equal(r.status, 400, `${target}: ${r.status} ${r.text.slice(0, 200)}`);
        if (code) assertProblem(r, { status: 400, code });
        assert.ok(!/root:.*:0:0:/.test(r.text), `${target} leaked /etc/passwd`);
      }
    });

    test('a malformed query string is 400 query.invalid', async () => {
      for (const q of ['?a=%zz', '?a=%', '?a=%0', '?lang=%ff%fe']) {
        const r = await request(node, `/api/v1/notices${q}`);
        assertProblem(r, { status: 400, code: 'query.invalid' });
      }
      const nul = await request(node, '/api/v1/notices?a=%00');
      assertProblem(nul, { status: 400, code: 'query.invalid' });
      const many = Array.from({ length: 70 }, (_, i) => `p${i}=1`).join('&');
      const r = await request(node, `/api/v1/version?${many}`);
      assertProblem(r, { status: 400, code: 'query.invalid' });
    });

    test('concurrent requests all get their own answers', async () => {
      const ids = Array.from({ length: 50 }, (_, i) => `concurrent-${i}`);
      const rs = await Promise.all(ids.map((id) => request(node, '/api/v1/version', { headers: { 'X-Request-Id': id } })));
      rs.forEach((r, i) => {
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('x-request-id'), ids[i]);
      });
    });
  });

  // libmicrohttpd 0.9.75 answers a request without Host with its header
  // block twice, never answers an unknown transfer coding, and lets a
  // client trickle a request head for ever; egov works around each
  // (docs/architecture.md, "libmicrohttpd's quirks").
  describe(`libmicrohttpd's quirks, worked around (${backend})`, () => {
    let node;
    before(async () => {
      node = await start(backend, 'kernel_quirks', { config: adminConfig('head_timeout_s = 2\ntimeout_s = 10\n') });
    });
    after(async () => { await stopClean(node); });

    test('HTTP/1.1 without Host: one 400 problem with one header block', async () => {
      const r = await raw(node.port, 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n', { timeoutMs: 3000 });
      assert.equal((r.raw.match(/HTTP\/1\.[01] \d{3}/g) ?? []).length, 1, `one status line: ${JSON.stringify(r.raw.slice(0, 400))}`);
      assertProblem(r, { status: 400, code: 'bad_request' });
      // HTTP/1.0 needs no Host.
      const old = await raw(node.port, 'GET /healthz HTTP/1.0\r\n\r\n', { timeoutMs: 3000 });
      assert.equal(old.status, 200);
      // Two Host headers are as bad as none.
      const two = await raw(node.port, 'GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n', { timeoutMs: 3000 });
      assertProblem(two, { status: 400, code: 'bad_request' });
      // Whitespace in or after a header name (RFC 9112 5.1), and a space in
      // the request target: a proxy could read either differently.
      for (const bad of ['GET /healthz HTTP/1.1\r\nHost: x\r\nX-Y : z\r\nConnection: close\r\n\r\n',
        'GET /healthz HTTP/1.1\r\nHost: x\r\nX Y: z\r\nConnection: close\r\n\r\n',
        'GET /a b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']) {
        const r2 = await raw(node.port, bad, { timeoutMs: 3000 });
        assertProblem(r2, { status: 400, code: 'bad_request' });
      }
    });

    test('an unknown transfer coding is answered 501 at once; with Content-Length too, 400', async () => {
      const h = 'POST /api/v1/notices HTTP/1.1\r\nHost: x\r\nConnection: close\r\n'
        + `Authorization: ${auth.Authorization}\r\nContent-Type: application/json\r\n`;
      for (const te of ['xchunked', 'gzip', 'gzip, chunked', 'chunked, gzip']) {
        const t0 = Date.now();
        const r = await raw(node.port, `${h}Transfer-Encoding: ${te}\r\n\r\nabc`, { timeoutMs: 4000 });
        assert.equal(r.timedOut, false, `Transfer-Encoding: ${te} was never answered`);
        assert.ok(Date.now() - t0 < 2000, `Transfer-Encoding: ${te} answered after ${Date.now() - t0} ms`);
        assertProblem(r, { status: 501, code: 'transfer_encoding_unsupported' });
      }
      const both = await raw(node.port, `${h}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`, { timeoutMs: 4000 });
      assertProblem(both, { status: 400, code: 'bad_request' });
      // chunked itself, in any letter case, is fine.
      const ok = await raw(node.port, `${h}Transfer-Encoding: Chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`, { timeoutMs: 4000 });
      assertProblem(ok, { status: 400, code: 'json.missing_field', field: 'category' });
    });

    test('a request head trickled byte by byte is dropped at the head deadline', async () => {
      // The request line is whole after 1.6 s, so the request has begun
      // (egov holds a request struct for it) when the deadline ends it.
      const head = `GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(200)}\r\n\r\n`;
      const t0 = Date.now();
      // One byte every 100 ms, each well inside the idle timeout (10 s):
      // only a deadline on the whole head ends it.
      const r = await raw(node.port, [...head], { paceMs: 100, timeoutMs: 15000 });
      const took = Date.now() - t0;
      assert.equal(r.timedOut, false, 'the trickling client was never dropped');
      assert.equal(r.status, 0, `a trickled head was answered: ${r.raw.slice(0, 100)}`);
      assert.ok(took >= 1500 && took < 6000, `dropped after ${took} ms (deadline 2 s)`);
      // A head sent at once on a kept-alive connection is not affected, nor
      // is the next request on it.
      const ok = await request(node, '/healthz');
      assert.equal(ok.status, 200);
    });

    test('a garbage request line is closed at once or at the head deadline, never served', async () => {
      // No space at all: libmicrohttpd closes at once without an answer
      // (documented as harmless). Bytes that never make a line end at
      // the head deadline.
      const g = await raw(node.port, 'GARBAGE\r\n\r\n', { timeoutMs: 5000 });
      assert.equal(g.timedOut, false);
      assert.ok(g.status === 0 || g.status === 400, `GARBAGE: ${g.status}`);
      const t0 = Date.now();
      const bin = await raw(node.port, Buffer.from([0, 1, 2, 0x20, 0x2f, 0x20, 0x0d, 0x0a, 0x0d, 0x0a]), { timeoutMs: 8000 });
      assert.equal(bin.timedOut, false, 'binary garbage held the connection');
      assert.ok(Date.now() - t0 < 6000);
      assert.ok(bin.status === 0 || bin.status === 400, `binary: ${bin.status}`);
      assert.equal((await request(node, '/healthz')).status, 200);
    });
  });
}
