// Holds HTTP responses to docs/api/openapi.json: finds the operation for a
// method and path, then checks the status is documented, the content type is
// the documented one, required response headers are present and the body
// validates against the response schema (JSON Schema 2020-12, through ajv).
//
//   assertConforms('GET', '/api/v1/notices?limit=2', res)   res from lib/http.mjs
//   validateSchema('Problem', value)                          -> [] or error strings
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv2020Module from '../../../node_modules/ajv/dist/2020.js';
import addFormatsModule from '../../../node_modules/ajv-formats/dist/index.js';
import { root } from '../../lib/egov.mjs';

const Ajv2020 = Ajv2020Module.default ?? Ajv2020Module;
const addFormats = addFormatsModule.default ?? addFormatsModule;

export const specPath = path.join(root, 'docs/api/openapi.json');
export const spec = JSON.parse(readFileSync(specPath, 'utf8'));

// strict: false because OpenAPI adds keywords (description, x-*, ...) that a
// plain JSON Schema validator does not know; the document itself is the base
// of every $ref.
const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
addFormats(ajv);
ajv.addSchema(spec, 'openapi.json');

const validators = new Map();
const pointerEscape = (s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1');

function validatorAt(pointer) {
  let v = validators.get(pointer);
  if (!v) {
    v = ajv.compile({ $ref: `openapi.json#${pointer}` });
    validators.set(pointer, v);
  }
  return v;
}

function errorsOf(v) {
  return (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} (${e.schemaPath})`);
}

// Validates value against a named component schema; returns error strings.
export function validateSchema(name, value) {
  const v = validatorAt(`/components/schemas/${pointerEscape(name)}`);
  return v(value) ? [] : errorsOf(v);
}

function deref(obj) {
  let o = obj;
  for (let i = 0; o && o.$ref && i < 10; i++) {
    const parts = o.$ref.replace(/^#\//, '').split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    o = parts.reduce((acc, k) => acc?.[k], spec);
  }
  return o;
}

// Finds the path template for a concrete path: literal segments beat {params}.
export function findPath(concrete) {
  const p = concrete.split('?')[0];
  const segs = p.split('/');
  let best = null;
  let bestScore = -1;
  for (const tpl of Object.keys(spec.paths)) {
    const t = tpl.split('/');
    if (t.length !== segs.length) continue;
    let score = 0;
    let ok = true;
    for (let i = 0; i < t.length && ok; i++) {
      if (/^\{[^}]+\}$/.test(t[i])) ok = segs[i].length > 0;
      else if (t[i] === segs[i]) score++;
      else ok = false;
    }
    if (ok && score > bestScore) { best = tpl; bestScore = score; }
  }
  return best;
}

export function findOperation(method, concretePath) {
  const tpl = findPath(concretePath);
  if (!tpl) return null;
  const item = spec.paths[tpl];
  let m = method.toLowerCase();
  if (m === 'head' && !item.head) m = 'get';
  return { template: tpl, method: m, operation: item[m] ?? null, item };
}

const mediaEssence = (ct) => (ct ?? '').split(';')[0].trim().toLowerCase();

// res: { status, headers (Headers), text, json }. Returns the body (parsed
// when JSON) so tests can go on asserting on it.
export function assertConforms(method, concretePath, res) {
  const where = `${method} ${concretePath} -> ${res.status}`;
  const found = findOperation(method, concretePath);
  assert.ok(found, `${where}: no path in openapi.json matches`);
  let responses;
  if (found.operation) {
    responses = found.operation.responses;
  } else {
    // No such operation: only a 405 is a conforming answer.
    assert.equal(res.status, 405, `${where}: ${method} is not documented for ${found.template}`);
    responses = { 405: { $ref: '#/components/responses/MethodNotAllowed' } };
  }
  const key = String(res.status);
  const response = deref(responses[key] ?? responses[`${key[0]}XX`] ?? responses.default);
  assert.ok(response, `${where}: status ${res.status} is not documented (documented: ${Object.keys(responses).join(', ')})`);
  for (const [name, h] of Object.entries(response.headers ?? {})) {
    const hdr = deref(h);
    const value = res.headers.get(name);
    if (hdr.required) assert.ok(value !== null, `${where}: required header ${name} missing`);
    if (value !== null && hdr.schema?.pattern) {
      assert.match(value, new RegExp(hdr.schema.pattern), `${where}: header ${name}`);
    }
  }
  if (!response.content || method.toUpperCase() === 'HEAD') {
    assert.equal(res.text ?? '', '', `${where}: expected no body`);
    return null;
  }
  const ct = res.headers.get('content-type');
  const want = Object.keys(response.content);
  const media = want.find((k) => mediaEssence(k) === mediaEssence(ct));
  assert.ok(media, `${where}: content type ${ct} not among ${want.join(', ')}`);
  // Parameters the description names (version=0.0.4) must be there too.
  for (const param of media.split(';').slice(1)) {
    const p = param.trim().toLowerCase().replace(/\s+/g, '');
    assert.ok((ct ?? '').toLowerCase().replace(/\s+/g, '').includes(p), `${where}: content type ${ct} lacks ${p}`);
  }
  const essence = mediaEssence(media);
  const schemaPtr = `/paths/${pointerEscape(found.template)}/${found.operation ? found.method : 'get'}/responses/${key}`;
  let body = res.text;
  if (essence === 'application/json' || essence.endsWith('+json')) {
    assert.ok(res.json !== undefined, `${where}: body is not JSON: ${String(res.text).slice(0, 200)}`);
    body = res.json;
  }
  if (response.content[media].schema) {
    // Validate through the (possibly shared) response object so $refs resolve.
    const ref = responses[key] ?? responses[`${key[0]}XX`] ?? responses.default;
    const ptr = ref.$ref
      ? `${ref.$ref.slice(1)}/content/${pointerEscape(media)}/schema`
      : `${schemaPtr}/content/${pointerEscape(media)}/schema`;
    const v = validatorAt(ptr);
    assert.ok(v(body), `${where}: body does not match ${ptr}:\n  ${errorsOf(v).join('\n  ')}\n  body: ${JSON.stringify(body).slice(0, 500)}`);
  }
  return body;
}
