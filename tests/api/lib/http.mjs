// Helpers shared by the API tests: starting a node (with a private
// PostgreSQL database per test file, see tests/lib/egov.mjs), HTTP through
// fetch and through raw sockets (for what fetch would normalise or refuse to
// send), and the assertions every answer is held to (security headers,
// problem documents, titles from the message catalogues).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { psql, root, startEgov } from '../../lib/egov.mjs';
import { validateSchema } from './openapi.mjs';

export const ADMIN_TOKEN = 'api-test-admin-token-0123456789abcdefghijklmnop';
export const adminConfig = (extra = '') => `[server]\nadmin_token = ${ADMIN_TOKEN}\n${extra}`;
export const auth = { Authorization: `Bearer ${ADMIN_TOKEN}` };

export const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
  + "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export const LANGS = ['zh-Hant', 'pt', 'en'];

// Runs SQL on a node's database with the backend's own client (sqlite3 or
// psql), as an operator or an intruder with direct access would.
export function dbExec(node, statement) {
  if (node.database.startsWith('sqlite:')) {
    const r = spawnSync('sqlite3', ['-batch', '-cmd', '.timeout 5000', node.database.slice('sqlite:'.length), statement], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`sqlite3: ${r.stderr}`);
    return r.stdout.trim();
  }
  return psql(node.database, statement);
}

// Starts egov for a backend; tag names this test file's private database
// (see isolatePostgres in tests/lib/egov.mjs).
export async function start(backend, tag, opts = {}) {
  return startEgov({ backend, tag: `api_${tag}`, ...opts });
}

// Stops a node and holds it to a clean exit: SIGTERM must end it with status
// 0 (a sanitizer build exits non-zero on a leak or memory error, and its
// report is in the logs).
export async function stopClean(node) {
  if (!node) return;
  const logs = () => node.logs().split('\n').filter((l) => !l.includes('"event":"access"')).slice(-40).join('\n');
  const exit = await node.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, `egov did not exit cleanly on SIGTERM:\n${logs()}`);
}

// ---- HTTP --------------------------------------------------------------
function parseJson(text) {
  try { return JSON.parse(text); } catch { return undefined; }
}

// fetch with the answer read: { status, headers, text, json }.
export async function request(node, p, { method = 'GET', headers = {}, body, json } = {}) {
  const h = { ...headers };
  let b = body;
  if (json !== undefined) {
    b = JSON.stringify(json);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
  }
  const res = await fetch(node.url + p, { method, headers: h, body: b, redirect: 'manual' });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: parseJson(text) };
}

// Sends bytes on a fresh connection and reads one answer (or until the
// server closes, or timeoutMs). { status, headers, text, json, raw, closed, timedOut }.
// paceMs: write the pieces of data that far apart, stopping once the server
// has answered or closed (so an early answer is not lost to a reset).
export function raw(port, data, { timeoutMs = 5000, end = false, paceMs = 0 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    let done = false;
    const finish = (extra) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...parseRaw(Buffer.concat(chunks)), ...extra });
    };
    const timer = setTimeout(() => finish({ timedOut: true, closed: false }), timeoutMs);
    sock.on('connect', async () => {
      for (const piece of Array.isArray(data) ? data : [data]) {
        if (done || chunks.length > 0 || sock.destroyed) break;
        sock.write(piece);
        if (paceMs) await new Promise((r) => setTimeout(r, paceMs));
      }
      if (end && !sock.destroyed) sock.end();
    });
    sock.on('data', (d) => {
      chunks.push(d);
      const r = parseRaw(Buffer.concat(chunks));
      if (r.complete) finish({ closed: false, timedOut: false });
    });
    sock.on('error', () => finish({ closed: true, timedOut: false }));
    sock.on('close', () => finish({ closed: true, timedOut: false }));
  });
}

export function parseRaw(buf) {
  const s = buf.toString('latin1');
  const at = s.indexOf('\r\n\r\n');
  if (at < 0) return { status: 0, headers: new Headers(), text: '', raw: buf.toString('utf8'), complete: false };
  const lines = s.slice(0, at).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) {
      try { headers.append(line.slice(0, i).trim(), line.slice(i + 1).trim()); } catch { /* odd header */ }
    }
  }
  let bodyBuf = buf.subarray(Buffer.byteLength(s.slice(0, at + 4), 'latin1'));
  let complete = false;
  const cl = headers.get('content-length');
  if (cl !== null) {
    complete = bodyBuf.length >= Number(cl);
    bodyBuf = bodyBuf.subarray(0, Number(cl));
  } else if ((headers.get('transfer-encoding') ?? '').toLowerCase().includes('chunked')) {
    const out = [];
    let off = 0;
    for (;;) {
      const nl = bodyBuf.indexOf('\r\n', off);
      if (nl < 0) break;
      const size = parseInt(bodyBuf.subarray(off, nl).toString('latin1'), 16);
      if (Number.isNaN(size)) break;
      if (size === 0) { complete = true; break; }
      out.push(bodyBuf.subarray(nl + 2, nl + 2 + size));
      off = nl + 2 + size + 2;
    }
    bodyBuf = Buffer.concat(out);
  }
  const text = bodyBuf.toString('utf8');
  return { status: m ? Number(m[1]) : 0, headers, text, json: parseJson(text), raw: buf.toString('utf8'), complete };
}

// A minimal valid GET for raw().
export const rawGet = (target, extra = '') => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${extra}\r\n`;

// ---- catalogues -------------------------------------------------------
const catalogues = {};
export function catalogue(lang) {
  if (!catalogues[lang]) {
    const f = path.join(root, 'web/i18n', `${lang}.json`);
    catalogues[lang] = existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : {};
  }
  return catalogues[lang];
}

// The title the server must use: the language's own text, else English,
// else the key (see src/core/i18n.h).
export function expectedTitle(lang, code) {
  const key = `problem.${code}`;
  return catalogue(lang)[key] ?? catalogue('en')[key] ?? key;
}

// ---- assertions ---------------------------------------------------------
export function assertSecurityHeaders(res, where = '') {
  const h = res.headers;
  assert.equal(h.get('content-security-policy'), CSP, `${where} Content-Security-Policy`);
  assert.equal(h.get('x-content-type-options'), 'nosniff', `${where} X-Content-Type-Options`);
  assert.equal(h.get('referrer-policy'), 'no-referrer', `${where} Referrer-Policy`);
  // Document-only headers go with HTML answers (src/core/req.c).
  if ((h.get('content-type') ?? '').startsWith('text/html')) {
    assert.equal(h.get('x-frame-options'), 'DENY', `${where} X-Frame-Options`);
    assert.equal(h.get('cross-origin-opener-policy'), 'same-origin', `${where} Cross-Origin-Opener-Policy`);
    const pp = (h.get('permissions-policy') ?? '').replace(/\s+/g, '');
    for (const f of ['camera=()', 'microphone=()', 'geolocation=()']) {
      assert.ok(pp.includes(f), `${where} Permissions-Policy lacks ${f}: ${h.get('permissions-policy')}`);
    }
  }
  assert.match(h.get('x-request-id') ?? '', /^[A-Za-z0-9._-]{1,64}$/, `${where} X-Request-Id`);
}

// Holds a problem answer to the contract. want: { status, code, field?,
// lang? (default zh-Hant), instance? }. Returns the body.
export function assertProblem(res, want) {
  const where = `${want.code}:`;
  assert.equal(res.status, want.status, `${where} status (body: ${res.text.slice(0, 300)})`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json\b/, `${where} content type`);
  const p = res.json;
  assert.ok(p && typeof p === 'object', `${where} body is not JSON: ${res.text.slice(0, 200)}`);
  assert.equal(p.code, want.code, `${where} code (body: ${JSON.stringify(p)})`);
  assert.equal(p.status, want.status, `${where} body status`);
  if ('field' in want) assert.equal(p.field, want.field, `${where} field (body: ${JSON.stringify(p)})`);
  if (want.instance !== undefined) assert.equal(p.instance, want.instance, `${where} instance`);
  const lang = want.lang ?? 'zh-Hant';
  assert.equal(res.headers.get('content-language'), lang, `${where} Content-Language`);
  assert.equal(p.title, expectedTitle(lang, want.code), `${where} title in ${lang}`);
  assert.equal(p.request_id, res.headers.get('x-request-id'), `${where} request_id matches X-Request-Id`);
  assertSecurityHeaders(res, where);
  assert.equal(p.type, `urn:egov:problem:${want.code}`, `${where} type`);
  const errs = validateSchema('Problem', p);
  assert.deepEqual(errs, [], `${where} Problem schema: ${JSON.stringify(p)}`);
  return p;
}
