// The info module's notices: listing with cursor pagination, one notice with
// ETag/304, creation with the operator token, and the JSON binding's errors
// on the creation body.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { backends } from '../lib/egov.mjs';
import { adminConfig, assertProblem, assertSecurityHeaders, auth, raw, request, start, stopClean } from './lib/http.mjs';
import { assertConforms } from './lib/openapi.mjs';

const validNotice = (over = {}) => ({
  category: 'food_safety',
  title: { 'zh-Hant': '食品安全通告', pt: 'Aviso de segurança alimentar', en: 'Food safety notice' },
  body: { 'zh-Hant': '請勿食用。', pt: 'Não consumir.', en: 'Do not eat.' },
  ...over,
});

for (const backend of backends()) {
  describe(`notices (${backend})`, () => {
    let node;
    before(async () => { node = await start(backend, 'notices', { config: adminConfig() }); });
    after(async () => { await stopClean(node); });

    const post = (body, headers = auth) => request(node, '/api/v1/notices', {
      method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' },
      body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    });

    test('the demo data has at least 3 notices, newest first', async () => {
      const r = await request(node, '/api/v1/notices');
      assert.equal(r.status, 200, r.text);
      const page = assertConforms('GET', '/api/v1/notices', r);
      assertSecurityHeaders(r);
      assert.ok(page.items.length >= 3, `demo notices: ${page.items.length}`);
      assert.ok(page.items.length <= 20, 'default limit is 20');
      const times = page.items.map((n) => Date.parse(n.published_at));
      for (let i = 1; i < times.length; i++) assert.ok(times[i - 1] >= times[i], 'newest first');
      for (const n of page.items) {
        for (const lang of ['zh-Hant', 'pt', 'en']) assert.ok(n.title[lang].length > 0 && n.body[lang].length > 0);
      }
    });

    test('cursor pagination walks every notice exactly once', async () => {
      // Enough notices for several pages, some sharing a published_at.
      const same = '2024-03-01T10:00:00Z';
      for (let i = 0; i < 5; i++) {
        const r = await post(validNotice({ category: 'traffic', published_at: i < 3 ? same : `2024-02-0${i}T08:00:00Z` }));
        assert.equal(r.status, 201, r.text);
      }
      const all = (await request(node, '/api/v1/notices?limit=100')).json;
      assert.equal(all.next_cursor, null, 'one page of 100 holds everything');
      const walked = [];
      let cursor = null;
      let pages = 0;
      do {
        const p = `/api/v1/notices?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const r = await request(node, p);
        assert.equal(r.status, 200, r.text);
        const page = assertConforms('GET', p, r);
        assert.ok(page.items.length <= 2);
        walked.push(...page.items);
        cursor = page.next_cursor;
        pages++;
        assert.ok(pages < 100, 'pagination terminates');
      } while (cursor !== null);
      assert.deepEqual(walked.map((n) => n.id), all.items.map((n) => n.id), 'pages concatenate to the full list');
      assert.equal(new Set(walked.map((n) => n.id)).size, walked.length, 'no notice twice');
      const first = (await request(node, '/api/v1/notices?limit=1')).json;
      assert.equal(first.items.length, 1);
      assert.equal(typeof first.next_cursor, 'string');
    });

    test('bad limit and cursor are 400 naming the parameter', async () => {
      for (const l of ['0', '101', '-1', 'abc', '1.5', '', '20x', '99999999999999999999']) {
        const r = await request(node, `/api/v1/notices?limit=${l}`);
        assertProblem(r, { status: 400, code: 'validation.invalid_field', field: 'limit' });
        assertConforms('GET', '/api/v1/notices', r);
      }
      for (const l of ['1', '100']) assert.equal((await request(node, `/api/v1/notices?limit=${l}`)).status, 200);
      for (const c of ['garbage', 'AAAA', '0', 'x'.repeat(300), '%E2%9C%93']) {
        const r = await request(node, `/api/v1/notices?cursor=${c}`);
        assertProblem(r, { status: 400, code: 'validation.invalid_field', field: 'cursor' });
      }
    });

    test('GET one notice, 404 for unknown or malformed ids, 304 on If-None-Match', async () => {
      const list = (await request(node, '/api/v1/notices?limit=3')).json;
      for (const n of list.items) {
        const p = `/api/v1/notices/${n.id}`;
        const r = await request(node, p);
        assert.equal(r.status, 200);
        assert.deepEqual(assertConforms('GET', p, r), n);
        const etag = r.headers.get('etag');
        const nm = await request(node, p, { headers: { 'If-None-Match': etag } });
        assert.equal(nm.status, 304);
        assert.equal(nm.text, '');
        assert.equal(nm.headers.get('etag'), etag, '304 repeats the ETag');
        assertSecurityHeaders(nm, '304');
        assertConforms('GET', p, nm);
        const other = await request(node, p, { headers: { 'If-None-Match': '"something-else"' } });
        assert.equal(other.status, 200);
      }
      for (const id of ['0190a0b0-0000-7000-8000-000000000000', 'not-a-uuid', '1', 'ZZZZZZZZ-0000-7000-8000-000000000000',
        `${list.items[0].id}x`, `${list.items[0].id.toUpperCase()}0`, "1' OR '1'='1", 'x'.repeat(200)]) {
        const p = `/api/v1/notices/${encodeURIComponent(id)}`;
        const r = await request(node, p);
        assertProblem(r, { status: 404, code: 'not_found' });
        assertConforms('GET', p, r);
      }
    });

    test('If-None-Match follows RFC 9110: a list of tags, weak comparison, *', async () => {
      const n = (await request(node, '/api/v1/notices?limit=1')).json.items[0];
      const p = `/api/v1/notices/${n.id}`;
      const etag = (await request(node, p)).headers.get('etag');
      for (const inm of [`"x", ${etag}`, `${etag},"y"`, `W/${etag}`, '*']) {
        const r = await request(node, p, { headers: { 'If-None-Match': inm } });
        assert.equal(r.status, 304, `If-None-Match: ${inm}`);
      }
    });

    test('POST without or with a wrong token is 401 with WWW-Authenticate: Bearer', async () => {
      const before1 = (await request(node, '/api/v1/notices?limit=100')).json.items.length;
      const token = auth.Authorization.slice('Bearer '.length);
      const cases = [{}, { Authorization: 'Bearer wrong-token-wrong-token-wrong-token' },
        { Authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` },
        { Authorization: 'Bearer' }, { Authorization: `Bearer ${token.slice(0, -1)}` },
        { Authorization: `Bearer ${token}x` }, { Authorization: token }];
      for (const h of cases) {
        const r = await post(validNotice(), h);
        assertProblem(r, { status: 401, code: 'unauthorized' });
        assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer\b/);
        assertConforms('POST', '/api/v1/notices', r);
      }
      const after1 = (await request(node, '/api/v1/notices?limit=100')).json.items.length;
      assert.equal(after1, before1, 'nothing was created');
    });

    test('POST with the operator token creates a notice', async () => {
      const published = '2030-01-02T03:04:05Z';
      const input = validNotice({ category: 'heritage', published_at: published });
      const r = await post(input);
      assert.equal(r.status, 201, r.text);
      const n = assertConforms('POST', '/api/v1/notices', r);
      assert.equal(r.headers.get('location'), `/api/v1/notices/${n.id}`);
      assert.equal(n.category, 'heritage');
      assert.deepEqual(n.title, input.title);
      assert.deepEqual(n.body, input.body);
      assert.equal(Date.parse(n.published_at), Date.parse(published));
      assert.ok(Math.abs(Date.parse(n.created_at) - Date.now()) < 60000, 'created_at is now');
      const got = await request(node, r.headers.get('location'));
      assert.equal(got.status, 200);
      assert.deepEqual(got.json, n);
      // The newest published notice is the first one listed.
      const list = (await request(node, '/api/v1/notices?limit=1')).json;
      assert.equal(list.items[0].id, n.id);
      // published_at defaults to now.
      const d = await post(validNotice());
      assert.equal(d.status, 201, d.text);
      assert.ok(Math.abs(Date.parse(d.json.published_at) - Date.now()) < 60000, 'published_at defaults to now');
      // UUIDv7 ids are time-ordered: a later one sorts after an earlier one.
      const e = await post(validNotice());
      assert.ok(e.json.id > d.json.id, `${e.json.id} > ${d.json.id}`);
    });

    test('POST keeps full Unicode text and limits length in characters', async () => {
      const title = { 'zh-Hant': '澳'.repeat(200), pt: 'ç'.repeat(200), en: '😀'.repeat(200) };
      const r = await post(validNotice({ title }));
      assert.equal(r.status, 201, `200 characters of title fit: ${r.text}`);
      assert.deepEqual(r.json.title, title);
      const b = await post(validNotice({ body: { 'zh-Hant': '文'.repeat(4000), pt: 'a', en: 'b' } }));
      assert.equal(b.status, 201, `4000 characters of body fit: ${b.text.slice(0, 300)}`);
      const t = await post(validNotice({ title: { ...validNotice().title, 'zh-Hant': '澳'.repeat(201) } }));
      assertProblem(t, { status: 400, code: 'json.too_long', field: 'title.zh-Hant' });
    });

    test('POST body errors name the field', async () => {
      const v = validNotice();
      const dup = JSON.stringify(v).replace('"category":"food_safety"', '"category":"food_safety","category":"news"');
      const nestedDup = JSON.stringify(v).replace('"en":"Food safety notice"', '"en":"Food safety notice","en":"again"');
      let deep = '1';
      for (let i = 0; i < 40; i++) deep = `{"a":${deep}}`;
      const cases = [
        ['{', 'json.malformed', null],
        ['', 'json.malformed', null],
        ['{"category":"news",}', 'json.malformed', null],
        ["{'category':'news'}", 'json.malformed', null],
        [`${JSON.stringify(v)} trailing`, 'json.malformed', null],
        [Buffer.concat([Buffer.from('{"category":"news'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]), 'json.invalid_utf8', null],
        [Buffer.concat([Buffer.from('{"title":{"en":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}}')]), 'json.invalid_utf8', null],
        [Buffer.concat([Buffer.from('{"title":{"en":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}}')]), 'json.invalid_utf8', null],
        [`{"a":${'['.repeat(40)}${']'.repeat(40)}}`, 'json.too_deep', null],
        [deep, 'json.too_deep', null],
        ['[]', 'json.not_object', null],
        ['"text"', 'json.not_object', null],
        ['42', 'json.not_object', null],
        ['null', 'json.not_object', null],
        [JSON.stringify({ ...v, title: 'flat' }), null, 'title'],
        [JSON.stringify({ ...v, extra: 1 }), 'json.unknown_field', 'extra'],
        [JSON.stringify({ ...v, title: { ...v.title, fr: 'Titre' } }), 'json.unknown_field', 'title.fr'],
        [JSON.stringify({ ...v, id: '0190a0b0-0000-7000-8000-000000000000' }), 'json.unknown_field', 'id'],
        [dup, 'json.duplicate_field', 'category'],
        [nestedDup, 'json.duplicate_field', 'title.en'],
        [JSON.stringify({ title: v.title, body: v.body }), 'json.missing_field', 'category'],
        [JSON.stringify({ ...v, body: { 'zh-Hant': 'x', pt: 'y' } }), 'json.missing_field', 'body.en'],
        [JSON.stringify({ ...v, title: { en: 'x', pt: 'y' } }), 'json.missing_field', 'title.zh-Hant'],
        [JSON.stringify({ ...v, category: 5 }), 'json.wrong_type', 'category'],
        [JSON.stringify({ ...v, category: null }), 'json.wrong_type', 'category'],
        [JSON.stringify({ ...v, title: { ...v.title, pt: ['a'] } }), 'json.wrong_type', 'title.pt'],
        [JSON.stringify({ ...v, published_at: 1700000000 }), 'json.wrong_type', 'published_at'],
        [JSON.stringify({ ...v, title: { ...v.title, en: 'x'.repeat(201) } }), 'json.too_long', 'title.en'],
        [JSON.stringify({ ...v, body: { ...v.body, pt: 'x'.repeat(4001) } }), 'json.too_long', 'body.pt'],
      ];
      for (const [body, code, field] of cases) {
        const r = await post(body);
        if (code) {
          const want = { status: 400, code };
          if (field) want.field = field;
          assertProblem(r, want);
        } else {
          // json.not_object or json.wrong_type are both fair for a string where an object belongs.
          assert.equal(r.status, 400, r.text);
          assert.ok(['json.not_object', 'json.wrong_type'].includes(r.json?.code), r.text);
          assert.equal(r.json.field, field, r.text);
        }
        assertConforms('POST', '/api/v1/notices', r);
      }
    });

    // The NUL escape is refused by the precheck, before the document is
    // parsed, so the problem names no field (docs/api/problems.md).
    test('POST strings with NUL are json.nul', async () => {
      const v = validNotice();
      for (const body of [{ ...v, title: { ...v.title, en: 'a\u0000b' } },
        { ...v, body: { ...v.body, 'zh-Hant': '\u0000' } }]) {
        const r = await post(body);
        assertProblem(r, { status: 400, code: 'json.nul' });
      }
    });

    test('POST values that parse but are invalid are 400 naming the field', async () => {
      const v = validNotice();
      const cases = [
        [{ ...v, category: 'weather' }, 'category'],
        [{ ...v, category: '' }, 'category'],
        [{ ...v, title: { ...v.title, en: '' } }, 'title.en'],
        [{ ...v, body: { ...v.body, pt: '' } }, 'body.pt'],
        [{ ...v, published_at: 'yesterday' }, 'published_at'],
        [{ ...v, published_at: '2024-13-01T00:00:00Z' }, 'published_at'],
        [{ ...v, published_at: '2024-02-30T00:00:00Z' }, 'published_at'],
        [{ ...v, published_at: '2024-01-01 00:00:00' }, 'published_at'],
      ];
      for (const [body, field] of cases) {
        const r = await post(body);
        assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 120)}: ${r.status} ${r.text}`);
        assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
        assert.equal(r.json.field, field, JSON.stringify(r.json));
        assertConforms('POST', '/api/v1/notices', r);
      }
      // An offset is accepted and normalised to UTC.
      const ok = await post({ ...v, published_at: '2024-05-01T08:00:00+08:00' });
      assert.equal(ok.status, 201, ok.text);
      assert.equal(Date.parse(ok.json.published_at), Date.parse('2024-05-01T00:00:00Z'));
      assert.match(ok.json.published_at, /Z$/);
    });

    test('POST body over 16 KiB is 413 before the JSON is looked at', async () => {
      const r = await post(`{"category":"news","pad":"${'x'.repeat(16 * 1024)}"}`);
      assertProblem(r, { status: 413, code: 'payload_too_large' });
      assertConforms('POST', '/api/v1/notices', r);
      const exact = await raw(node.port, 'POST /api/v1/notices HTTP/1.1\r\nHost: x\r\nConnection: close\r\n'
        + `Authorization: ${auth.Authorization}\r\nContent-Type: application/json\r\nContent-Length: 16385\r\n\r\n`, { timeoutMs: 3000 });
      assertProblem(exact, { status: 413, code: 'payload_too_large' });
    });
  });
}
