// System endpoints: /healthz, /readyz, /metrics (Prometheus text format,
// checked line by line), /api/openapi.json and /api/v1/version.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { backends } from '../lib/egov.mjs';
import { assertProblem, assertSecurityHeaders, dbExec, request, start, stopClean } from './lib/http.mjs';
import { assertConforms, spec, specPath } from './lib/openapi.mjs';

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const VALUE = '(?:[+-]?(?:[0-9]*\\.?[0-9]+(?:[eE][+-]?[0-9]+)?|Inf)|NaN)';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,(?:${LABEL}))*,?)?\\})? (${VALUE})(?: -?[0-9]+)?$`);

// Parses exposition text 0.0.4 strictly; throws on any bad line. Returns
// { families: Map(name -> {type, help}), samples: [{name, labels, value}] }.
export function parseMetrics(text) {
  assert.ok(text.endsWith('\n'), 'exposition ends with a newline');
  const families = new Map();
  const samples = [];
  const lines = text.split('\n').slice(0, -1);
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line === '') return;
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      const f = families.get(m[1]) ?? {};
      assert.equal(f.help, undefined, `${where}: second HELP`);
      f.help = m[2];
      families.set(m[1], f);
      return;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      const f = families.get(m[1]) ?? {};
      assert.equal(f.type, undefined, `${where}: second TYPE`);
      assert.ok(!samples.some((s) => familyOf(s.name, families) === m[1]), `${where}: TYPE after samples`);
      f.type = m[2];
      families.set(m[1], f);
      return;
    }
    assert.ok(!line.startsWith('# HELP') && !line.startsWith('# TYPE'), `${where}: malformed HELP/TYPE`);
    if (line.startsWith('#')) return;
    m = SAMPLE.exec(line);
    assert.ok(m, `${where}: not a valid sample line`);
    const labels = {};
    if (m[2]) {
      for (const lm of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        assert.equal(labels[lm[1]], undefined, `${where}: label ${lm[1]} twice`);
        labels[lm[1]] = lm[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      }
    }
    const v = m[3] === 'NaN' ? NaN : Number(m[3].replace('Inf', 'Infinity'));
    samples.push({ name: m[1], labels, value: v });
  });
  // Every sample belongs to a family with a TYPE, and no series repeats.
  const seen = new Set();
  for (const s of samples) {
    const fam = familyOf(s.name, families);
    assert.ok(fam && families.get(fam).type, `sample ${s.name} has no TYPE line`);
    const key = `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
    assert.ok(!seen.has(key), `series ${key} twice`);
    seen.add(key);
    if (families.get(fam).type === 'counter') assert.ok(s.value >= 0, `${s.name} counter is negative`);
  }
  return { families, samples };
}

function familyOf(name, families) {
  if (families.has(name)) return name;
  for (const suf of ['_bucket', '_sum', '_count', '_total', '_created']) {
    if (name.endsWith(suf) && families.has(name.slice(0, -suf.length))) return name.slice(0, -suf.length);
  }
  return null;
}

const find = (samples, name, pred = () => true) => samples.filter((s) => s.name === name && pred(s.labels));

async function scrape(node) {
  const r = await request(node, '/metrics');
  assert.equal(r.status, 200);
  assertConforms('GET', '/metrics', r);
  return parseMetrics(r.text);
}

// A request is counted when the server has finished sending its answer, a
// moment after the client has it, so a scrape on another connection right
// after can miss it: scrape again (for up to 2 s) until ready(parsed) holds,
// and return the last scrape either way (the caller asserts on it).
async function scrapeWhen(node, ready) {
  const until = Date.now() + 2000;
  for (;;) {
    const m = await scrape(node);
    if (ready(m) || Date.now() > until) return m;
    await new Promise((res) => setTimeout(res, 20));
  }
}

for (const backend of backends()) {
  describe(`system (${backend})`, () => {
    let node;
    before(async () => { node = await start(backend, 'system'); });
    after(async () => { await stopClean(node); });

    test('GET /healthz', async () => {
      const r = await request(node, '/healthz');
      assert.equal(r.status, 200);
      assert.deepEqual(assertConforms('GET', '/healthz', r), { status: 'ok' });
      assertSecurityHeaders(r);
      const h = await request(node, '/healthz', { method: 'HEAD' });
      assert.equal(h.status, 200);
      assert.equal(h.text, '');
    });

    test('GET /readyz', async () => {
      const r = await request(node, '/readyz');
      assert.equal(r.status, 200, r.text);
      const body = assertConforms('GET', '/readyz', r);
      assert.equal(body.status, 'ready');
      assert.deepEqual({ database: body.checks.database, migrations: body.checks.migrations }, { database: 'ok', migrations: 'ok' });
    });

    test('GET /api/v1/version', async () => {
      const r = await request(node, '/api/v1/version');
      assert.equal(r.status, 200);
      const v = assertConforms('GET', '/api/v1/version', r);
      assert.equal(v.name, 'egov');
      assert.equal(v.role, 'standalone');
      assert.equal(v.database, backend);
    });

    test('GET /api/openapi.json serves docs/api/openapi.json', async () => {
      const r = await request(node, '/api/openapi.json');
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /^application\/json\b/);
      assert.equal(r.json?.openapi, '3.1.0');
      assert.deepEqual(r.json, JSON.parse(readFileSync(specPath, 'utf8')));
      assert.equal(spec.openapi, '3.1.0');
      assertConforms('GET', '/api/openapi.json', r);
      assertSecurityHeaders(r);
    });

    test('GET /metrics: valid exposition text with the kernel metrics', async () => {
      await request(node, '/healthz');
      await request(node, '/api/v1/notices');
      await scrapeWhen(node, (m) => find(m.samples, 'egov_http_requests_total')
        .some((x) => x.labels.route.includes('notices') && x.labels.method === 'GET'));
      const r = await request(node, '/metrics');
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /^text\/plain; ?version=0\.0\.4/);
      const { families, samples } = parseMetrics(r.text);
      const types = {
        egov_http_requests_total: 'counter',
        egov_http_request_duration_seconds: 'histogram',
        egov_db_queries_total: 'counter',
        egov_db_query_seconds_total: 'counter',
        egov_audit_records: 'gauge',
        egov_build_info: 'gauge',
        process_start_time_seconds: 'gauge',
      };
      for (const [name, type] of Object.entries(types)) {
        const fam = families.get(name) ?? families.get(name.replace(/_total$/, ''));
        assert.ok(fam, `metric family ${name} missing`);
        assert.equal(fam.type, type, `${name} type`);
        assert.ok(fam.help && fam.help.length > 0, `${name} has HELP`);
      }
      const reqs = find(samples, 'egov_http_requests_total');
      assert.ok(reqs.length > 0);
      for (const s of reqs) {
        assert.deepEqual(Object.keys(s.labels).sort(), ['method', 'route', 'status'], JSON.stringify(s.labels));
        assert.match(s.labels.status, /^[1-5][0-9]{2}$/);
        assert.ok(Number.isInteger(s.value));
      }
      assert.ok(reqs.some((s) => s.labels.route.includes('healthz') && s.labels.method === 'GET' && s.labels.status === '200'));
      assert.ok(reqs.some((s) => s.labels.route.includes('notices') && s.labels.method === 'GET'));
      // Routes are labelled by template, not by the raw path (bounded cardinality).
      await request(node, '/api/v1/notices/0190a0b0-0000-7000-8000-00000000abcd');
      const after1 = find((await scrape(node)).samples, 'egov_http_requests_total');
      assert.ok(!after1.some((s) => s.labels.route.includes('00000000abcd')), 'raw path used as a route label');

      // Histogram: cumulative buckets per route, +Inf == _count, _sum present.
      const buckets = find(samples, 'egov_http_request_duration_seconds_bucket');
      assert.ok(buckets.length > 0, 'no histogram buckets');
      const routes = new Set(buckets.map((b) => b.labels.route));
      assert.ok(routes.size > 0 && [...routes].every((x) => typeof x === 'string'), 'buckets labelled by route');
      for (const route of routes) {
        const bs = buckets.filter((b) => b.labels.route === route)
          .map((b) => ({ le: b.labels.le === '+Inf' ? Infinity : Number(b.labels.le), v: b.value }))
          .sort((a, b) => a.le - b.le);
        assert.ok(bs.length >= 2, `${route}: buckets`);
        assert.equal(bs[bs.length - 1].le, Infinity, `${route}: le="+Inf" bucket`);
        for (let i = 1; i < bs.length; i++) assert.ok(bs[i].v >= bs[i - 1].v, `${route}: buckets are cumulative`);
        const count = find(samples, 'egov_http_request_duration_seconds_count', (l) => l.route === route);
        const sum = find(samples, 'egov_http_request_duration_seconds_sum', (l) => l.route === route);
        assert.equal(count.length, 1, `${route}: _count`);
        assert.equal(sum.length, 1, `${route}: _sum`);
        assert.equal(count[0].value, bs[bs.length - 1].v, `${route}: +Inf bucket equals _count`);
        assert.ok(sum[0].value >= 0);
      }
      const build = find(samples, 'egov_build_info');
      assert.equal(build.length, 1);
      assert.equal(build[0].value, 1);
      const version = (await request(node, '/api/v1/version')).json.version;
      assert.equal(build[0].labels.version, version);
      const startT = find(samples, 'process_start_time_seconds')[0];
      const now = Date.now() / 1000;
      assert.ok(startT && startT.value > now - 3600 && startT.value <= now + 1, `process_start_time_seconds ${startT?.value}`);
      const audit = find(samples, 'egov_audit_records');
      assert.equal(audit.length, 1);
      assert.ok(Number.isInteger(audit[0].value) && audit[0].value >= 0);
    });

    test('counters grow with requests', async () => {
      const key = (s) => s.labels.route.includes('version') && s.labels.method === 'GET' && s.labels.status === '200';
      const before1 = await scrape(node);
      const v0 = find(before1.samples, 'egov_http_requests_total', (l) => key({ labels: l }))[0]?.value ?? 0;
      const q0 = find(before1.samples, 'egov_db_queries_total')[0]?.value ?? 0;
      const c0 = find(before1.samples, 'egov_http_request_duration_seconds_count', (l) => l.route.includes('version'))[0]?.value ?? 0;
      for (let i = 0; i < 5; i++) await request(node, '/api/v1/version');
      for (let i = 0; i < 3; i++) await request(node, '/api/v1/notices?limit=1');
      const after1 = await scrapeWhen(node, (m) => (find(m.samples, 'egov_http_requests_total', (l) => key({ labels: l }))[0]?.value ?? 0) >= v0 + 5);
      const v1 = find(after1.samples, 'egov_http_requests_total', (l) => key({ labels: l }))[0]?.value;
      assert.equal(v1, v0 + 5, 'egov_http_requests_total for GET version 200');
      const c1 = find(after1.samples, 'egov_http_request_duration_seconds_count', (l) => l.route.includes('version'))[0]?.value;
      assert.equal(c1, c0 + 5, 'histogram _count for version');
      const q1 = find(after1.samples, 'egov_db_queries_total')[0]?.value;
      assert.ok(q1 >= q0 + 3, `egov_db_queries_total grew by ${q1 - q0} after 3 list queries`);
      const s0 = find(before1.samples, 'egov_db_query_seconds_total')[0]?.value ?? 0;
      const s1 = find(after1.samples, 'egov_db_query_seconds_total')[0]?.value;
      assert.ok(s1 >= s0 && s1 > 0, 'egov_db_query_seconds_total');
      const nf0 = find(after1.samples, 'egov_http_requests_total', (l) => l.status === '404').reduce((a, s) => a + s.value, 0);
      await request(node, '/definitely/missing');
      const notFound = (m) => find(m.samples, 'egov_http_requests_total', (l) => l.status === '404').reduce((a, s) => a + s.value, 0);
      const nf1 = notFound(await scrapeWhen(node, (m) => notFound(m) >= nf0 + 1));
      assert.equal(nf1, nf0 + 1, '404s are counted');
    });

    test('GET /readyz is 503 unavailable while a migration is missing', async () => {
      dbExec(node, 'DROP TABLE IF EXISTS mig_backup; CREATE TABLE mig_backup AS SELECT * FROM schema_migrations; '
        + "DELETE FROM schema_migrations WHERE module = 'info'");
      try {
        const r = await request(node, '/readyz');
        assertProblem(r, { status: 503, code: 'unavailable' });
        assertConforms('GET', '/readyz', r);
        assert.equal((await request(node, '/healthz')).status, 200, 'still alive while not ready');
      } finally {
        dbExec(node, 'DELETE FROM schema_migrations; INSERT INTO schema_migrations SELECT * FROM mig_backup; DROP TABLE mig_backup');
      }
      assert.equal((await request(node, '/readyz')).status, 200, 'ready again');
    });
  });
}
