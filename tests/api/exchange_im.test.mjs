// The data exchange held to the GovStack Information Mediator
// specification (GovStack_IM_Directory_Services_API.yaml) as an outside
// integrator would: the spec's client header X-GovStack-Client beside
// X-Road-Client and Information-Mediator-Client (and conflicting ones
// refused), malformed identifiers in a path refused with 400 before
// anything is looked up, getOpenAPI in the representation the caller asks
// for (application/json or text/yaml), and the peer listener's answers to
// a request without X-Road-Client or X-Road-Id (400 / 401 as documented,
// never 503).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backends } from '../lib/egov.mjs';
import {
  IDS, PERSONS_OPENAPI, peerRequest, request, signedHeaders, startExchange, waitForVersion,
} from '../lib/exchange.mjs';
import { assertProblem } from './lib/http.mjs';
import { assertConforms } from './lib/openapi.mjs';

const PERSONS = `${IDS.REG}/persons`;
const SMALL = `${IDS.REG}/small`;

// An OpenAPI description whose strings a careless YAML writer would turn
// into booleans, numbers or nulls, or break the document with.
const TRICKY_OPENAPI = {
  openapi: '3.0.0',
  info: {
    title: 'Tricky: "quotes", colons: and # hashes',
    version: '1.10',
    description: 'Two lines\nand a trailing space ',
    'x-flags': ['yes', 'no', 'on', 'off', 'true', 'False', 'null', '~', '', '0x1F', '1e3', '-', '- item', '? key', '@at', '`tick`'],
    'x-numbers': [0, -1, 3.5, 1e21, 12345678901234],
    'x-literals': [true, false, null],
    'x-empty': { object: {}, array: [] },
    'x-unicode': '陳大文 — Macau',
  },
  paths: {
    '/persons/{id}': { get: { responses: { 200: { description: 'a person' } } } },
    '/': { post: { responses: { '204': { description: 'nothing' } } } },
  },
};

// YAML read back by an independent parser (PyYAML, a YAML 1.1 reader: the
// strictest about plain scalars like yes/no/on/off).
function yamlToJson(text) {
  const r = spawnSync('python3', ['-c', 'import json,sys,yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))'],
    { input: text, encoding: 'utf8' });
  assert.equal(r.status, 0, `PyYAML could not read the document: ${r.stderr}\n${text}`);
  return JSON.parse(r.stdout);
}

for (const backend of backends()) {
  describe(`exchange: GovStack Information Mediator conformance (${backend})`, () => {
    let ex;

    before(async () => {
      ex = await startExchange({ backend, tag: 'im' });
      const file = path.join(ex.dir, 'tricky.json');
      writeFileSync(file, JSON.stringify(TRICKY_OPENAPI));
      ex.central.cliOk('exchange', 'service', 'add', `${IDS.REG}/tricky`, '--openapi', file);
      await waitForVersion(ex.dsb, ex.central);
    });
    after(async () => {
      if (!ex) return;
      const exits = await ex.stop();
      for (const [name, e] of Object.entries(exits)) assert.deepEqual(e, { code: 0, signal: null }, `${name} exit`);
    });

    const call = (p, headers = {}) => request(`${ex.dsb.url}/r1/${p}`, { headers });

    test('X-GovStack-Client names the caller as X-Road-Client and Information-Mediator-Client do', async () => {
      let r = await call(`${SMALL}/echo`, { 'X-GovStack-Client': IDS.APP });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.headers['x-road-client'], IDS.APP, 'the provider\'s back-end learns the caller');
      r = await call(`${IDS.REG}/allowedMethods`, { 'X-GovStack-Client': IDS.APP });
      assert.equal(r.status, 200, r.text);
      assertConforms('GET', `/r1/${IDS.REG}/allowedMethods`, r);
      r = await call(`${IDS.REG}/getOpenAPI?serviceCode=persons`, { 'X-GovStack-Client': IDS.APP });
      assert.equal(r.status, 200, r.text);
      // The same caller in several headers is one caller.
      r = await call(`${SMALL}/echo`, { 'X-GovStack-Client': IDS.APP, 'X-Road-Client': IDS.APP, 'Information-Mediator-Client': IDS.APP });
      assert.equal(r.status, 200, r.text);
    });

    test('client headers that disagree, or a malformed one, are refused with 400', async () => {
      for (const [h, field] of [
        [{ 'X-GovStack-Client': IDS.APP, 'X-Road-Client': IDS.OTHER }, 'X-Road-Client'],
        [{ 'X-Road-Client': IDS.APP, 'Information-Mediator-Client': IDS.OTHER }, 'Information-Mediator-Client'],
        [{ 'X-GovStack-Client': IDS.OTHER, 'Information-Mediator-Client': IDS.APP }, 'Information-Mediator-Client'],
        [{ 'X-GovStack-Client': 'MO/GOV/DSB' }, 'X-GovStack-Client'],
        [{ 'X-GovStack-Client': IDS.APP, 'X-Road-Client': 'MO/GOV/DSB/A"PP' }, 'X-Road-Client'],
      ]) {
        const r = await call(`${SMALL}/echo`, h);
        assertProblem(r, { status: 400, code: 'exchange.client_invalid', field });
        const m = await call(`${IDS.REG}/listMethods`, h);
        assertProblem(m, { status: 400, code: 'exchange.client_invalid', field });
      }
      assert.ok(!ex.backend.requests.some((q) => q.url === '/echo' && q.headers['x-road-client'] === IDS.OTHER));
    });

    test('a malformed identifier in the path is 400 before anything is looked up', async () => {
      const bad = [
        'MO/GOV/DS%22AJ/REG/persons/x', // a quote
        'MO/GOV/DSAJ/RE%27G/persons/x', // an apostrophe
        'MO/GOV/DSAJ/REG/per%20sons/x', // a space in the service code
        'MO/GOV/DS%C3%A9AJ/REG/persons/x', // outside the alphabet
        `MO/GOV/${'A'.repeat(65)}/REG/persons/x`, // a part too long
        'MO/GOV/DSAJ/REG/persons%3B/x', // ; in the service code
      ];
      for (const p of bad) {
        assertProblem(await call(p, { 'X-Road-Client': IDS.APP }), { status: 400, code: 'exchange.id_invalid', field: 'path' });
        // Unknown and malformed at once: still 400, not 404.
        assertProblem(await call(p.replace('MO/', 'XX/'), { 'X-Road-Client': IDS.APP }), { status: 400, code: 'exchange.id_invalid' });
      }
      // Empty parts, with the slashes sent as they are.
      for (const raw of ['/r1/MO//DSAJ/REG/persons/x', '/r1/MO/GOV/DSAJ//persons/x', '/r1/MO/GOV/DSAJ/REG//x']) {
        const r = await request(`${ex.dsb.url}${raw}`, { headers: { 'X-Road-Client': IDS.APP } });
        assert.equal(r.status, 400, `${raw}: ${r.status} ${r.text}`);
        assert.ok(['exchange.id_invalid', 'bad_request'].includes(r.json?.code), `${raw}: ${r.text}`);
      }
      // Metaservices check the path and their parameters first, too.
      assertProblem(await call('MO/GOV/DS%22AJ/REG/listMethods', { 'X-Road-Client': IDS.APP }), { status: 400, code: 'exchange.id_invalid', field: 'path' });
      assertProblem(await call('MO/GOV/DSAJ/RE%20G/allowedMethods', { 'X-Road-Client': IDS.APP }), { status: 400, code: 'exchange.id_invalid', field: 'path' });
      assertProblem(await call('MO/GOV/NOPE/REG/getOpenAPI', { 'X-Road-Client': IDS.APP }), { status: 400, code: 'exchange.service_code_missing', field: 'serviceCode' });
      assertProblem(await call('XX/GOV/NOPE/REG/getOpenAPI?serviceCode=', { 'X-Road-Client': IDS.APP }), { status: 400, code: 'exchange.service_code_missing', field: 'serviceCode' });
      assertProblem(await call(`${IDS.REG}/getOpenAPI?serviceCode=per%22sons`, { 'X-Road-Client': IDS.APP }), { status: 400, code: 'exchange.id_invalid', field: 'serviceCode' });
      assertProblem(await call('MO/GOV/NOPE/REG/getOpenAPI?serviceCode=a%20b', { 'X-Road-Client': IDS.APP }), { status: 400, code: 'exchange.id_invalid', field: 'serviceCode' });
      // Well-formed but unknown stays 404.
      assertProblem(await call('MO/GOV/NOPE/REG/persons/x', { 'X-Road-Client': IDS.APP }), { status: 404, code: 'exchange.unknown_member' });
      assertProblem(await call('MO/GOV/NOPE/REG/getOpenAPI?serviceCode=persons', { 'X-Road-Client': IDS.APP }), { status: 404, code: 'exchange.unknown_member' });
      // The provider's gateway refuses a malformed service id as well.
      const r = await peerRequest(ex.dsaj, '/peer/v1/r1/MO/GOV/DSAJ/RE%22G/persons/x', { key: ex.dsb.tlsKey, cert: ex.dsb.tlsCert });
      assertProblem(r, { status: 400, code: 'exchange.id_invalid', field: 'path' });
    });

    test('getOpenAPI answers JSON or YAML as the Accept header asks, with the spec\'s media types', async () => {
      const get = (accept, code = 'persons') => call(`${IDS.REG}/getOpenAPI?serviceCode=${code}`,
        accept === undefined ? { 'X-Road-Client': IDS.APP } : { 'X-Road-Client': IDS.APP, Accept: accept });
      for (const accept of [undefined, 'application/json', '*/*', 'application/*', 'text/yaml;q=0.5, application/json',
        'application/json;q=0.9, text/yaml;q=0.1']) {
        const r = await get(accept);
        assert.equal(r.status, 200, `${accept}: ${r.text}`);
        assert.match(r.headers.get('content-type'), /^application\/json/, String(accept));
        assert.deepEqual(r.json, PERSONS_OPENAPI);
        assertConforms('GET', `/r1/${IDS.REG}/getOpenAPI?serviceCode=persons`, r);
        assert.match(r.headers.get('vary') ?? '', /accept/i, 'the answer varies with Accept');
      }
      for (const accept of ['text/yaml', 'text/*', 'application/json;q=0.1, text/yaml', 'application/json;q=0, */*']) {
        const r = await get(accept);
        assert.equal(r.status, 200, `${accept}: ${r.text}`);
        assert.match(r.headers.get('content-type'), /^text\/yaml/, accept);
        assert.deepEqual(yamlToJson(r.text), PERSONS_OPENAPI, accept);
        assertConforms('GET', `/r1/${IDS.REG}/getOpenAPI?serviceCode=persons`, r);
      }
      // Every JSON value survives the trip: strings that look like other
      // things stay strings, numbers stay numbers, empty ones stay empty.
      const y = await get('text/yaml', 'tricky');
      assert.equal(y.status, 200, y.text);
      assert.deepEqual(yamlToJson(y.text), TRICKY_OPENAPI);
      const j = await get('application/json', 'tricky');
      assert.deepEqual(j.json, TRICKY_OPENAPI);
      // Nothing acceptable: 406, as a problem document.
      for (const accept of ['text/html', 'application/json;q=0, text/yaml;q=0', 'image/*']) {
        assertProblem(await get(accept), { status: 406, code: 'not_acceptable' });
      }
    });

    test('the peer listener answers a request without X-Road-Client with 400 and without X-Road-Id with 401', async () => {
      const h = signedHeaders({ messageId: crypto.randomUUID(), client: IDS.APP, service: PERSONS, method: 'GET', path: '/persons/1' },
        ex.dsb.signKey, ex.dsb.signCert);
      const send = (drop) => {
        const hh = { ...h };
        for (const d of drop) delete hh[d];
        return peerRequest(ex.dsaj, `/peer/v1/r1/${PERSONS}/persons/1`, { headers: hh, key: ex.dsb.tlsKey, cert: ex.dsb.tlsCert });
      };
      for (const drop of [['X-Road-Client'], ['X-Road-Client', 'X-Road-Id']]) {
        const r = await send(drop);
        assertProblem(r, { status: 400, code: 'exchange.client_invalid' });
        assert.ok(r.headers.get('x-egov-signature'), 'signed by the provider');
      }
      for (const drop of [['X-Road-Id'], ['X-Road-Id', 'X-Egov-Signature']]) {
        const r = await send(drop);
        assertProblem(r, { status: 401, code: 'exchange.signature_invalid' });
        assert.equal(r.headers.get('x-road-id'), null, 'no message id to answer with');
        assert.ok(r.headers.get('x-egov-signature'), 'signed by the provider');
      }
      // A push without them is refused the same way.
      const p = await peerRequest(ex.dsb, `/peer/v1/push/${IDS.APP}/changed/ev-1`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}', key: ex.dsaj.tlsKey, cert: ex.dsaj.tlsCert,
      });
      assert.ok([400, 401, 404].includes(p.status), `${p.status} ${p.text}`);
    });
  });
}
