// The multi-node fixture of the data exchange tests: a central node, two
// department gateways and a back-end service, on loopback, enrolled the
// way docs/exchange.md tells an operator to.
//
//   const ex = await startExchange({ backend: 'sqlite' | 'postgres', tag: 'gw' });
//   ex.central, ex.dsaj (provider gateway of MO/GOV/DSAJ/REG), ex.dsb
//   (consumer gateway of MO/GOV/DSB/APP): nodes with .url, .peerUrl,
//   .dataDir, .cli(...args), .stop(), .kill(), .start()
//   ex.backend                  the back-end stub (tests/lib/backend_stub.mjs)
//   await ex.call('MO/GOV/DSAJ/REG/persons/persons/7', { method, headers, body })
//                               through the consumer gateway as MO/GOV/DSB/APP
//   await ex.stop()
//
// Registry made here:
//   members     MO/GOV/DSAJ, MO/GOV/DSB
//   subsystems  MO/GOV/DSAJ/REG (gateway dsaj), MO/GOV/DSB/APP (gateway dsb),
//               MO/GOV/DSB/OTHER (gateway dsb, but dsb holds no key for it),
//               MO/GOV/DSAJ/DOWN (a gateway address nobody listens on)
//   services of MO/GOV/DSAJ/REG:
//     persons     log full, 1 MiB, OpenAPI, back-end timeout 1500 ms
//     small       log digest, max_body 1024
//     restricted  APP may only GET /allowed/*
//     secret      no access right for anybody
//     down        back-end address nobody listens on
//     nobackend   no back-end configured on dsaj
//   MO/GOV/DSAJ/DOWN/svc         (its gateway is unreachable)
//   MO/GOV/DSAJ/FAKE/svc         (its gateway is what a test starts on
//                                ex.fakePort with ex.fakeTlsKey/Cert)
//
// Each node has its own data directory (and PostgreSQL database on the
// 'postgres' backend: EGOV_TEST_PG_URL names the server, each node gets a
// fresh database beside it). Every node speaks only to 127.0.0.1.
//
// Federation (startFederation): the instance above (MO) and a second one,
// HK, with its own central node (registry, CA, TSA) and one gateway:
//
//   const fx = await startFederation({ backend, tag });
//   fx.mo                        the fixture above (startExchange)
//   fx.hk.central, fx.hk.gw      HK's central node and gateway
//   fx.call(path, opts)          through MO's consumer gateway (dsb) as
//                                MO/GOV/DSB/APP, like ex.call
//   await fx.stop()
//
// HK's registry: member HK/GOV/IMMD, subsystem HK/GOV/IMMD/REG (gateway
// hk.gw), services persons (OpenAPI, log full; MO/GOV/DSB/APP may GET it,
// granted by HK's registry) and nogrant (nobody may call it). Each central
// node trusts the other (MO by the command line, HK by the admin API).
// Every gateway's peer CA bundle holds both instances' CAs.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { startBackend } from './backend_stub.mjs';
import { bin, freePort, root } from './egov.mjs';

export const ADMIN_TOKEN = 'api-test-admin-token-0123456789abcdefghijklmnop';
export const IDS = {
  DSAJ: 'MO/GOV/DSAJ',
  DSB: 'MO/GOV/DSB',
  REG: 'MO/GOV/DSAJ/REG',
  APP: 'MO/GOV/DSB/APP',
  OTHER: 'MO/GOV/DSB/OTHER',
  DOWN: 'MO/GOV/DSAJ/DOWN',
  FAKE: 'MO/GOV/DSAJ/FAKE',
};

export const PERSONS_OPENAPI = {
  openapi: '3.0.0',
  info: { title: 'Persons register', version: '1' },
  paths: {
    '/persons/{id}': { get: { responses: { 200: { description: 'a person' } } } },
    '/persons': { post: { responses: { 200: { description: 'search' } } } },
  },
};

// ---- PostgreSQL: one fresh database per node --------------------------------
function psql(url, sql) {
  const r = spawnSync('psql', [url, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
  return r.stdout.trim();
}

function pgDatabase(name) {
  const base = process.env.EGOV_TEST_PG_URL;
  if (!base) throw new Error('EGOV_TEST_PG_URL is not set');
  const u = new URL(base);
  const db = `egov_ex_${name}`.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 63);
  psql(base, `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
  psql(base, `CREATE DATABASE "${db}"`);
  u.pathname = `/${db}`;
  return { url: u.toString(), drop: () => spawnSync('psql', [base, '-X', '-q', '-c', `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`]) };
}

// ---- a node ---------------------------------------------------------------------
export class Node {
  constructor(name, dir, backend, tag) {
    this.name = name;
    this.dataDir = path.join(dir, name);
    this.backend = backend;
    this.tag = tag;
    this.child = null;
    this.out = '';
  }

  async prepare(configText) {
    mkdirSync(this.dataDir, { recursive: true });
    this.port = this.port ?? await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    if (this.backend === 'postgres') {
      this.pg = pgDatabase(`${this.tag}_${this.name}`);
      this.database = this.pg.url;
    } else {
      this.database = `sqlite:${this.dataDir}/egov.db`;
    }
    this.confPath = path.join(this.dataDir, 'test.conf');
    writeFileSync(this.confPath, configText(this));
    this.env = { ...process.env, EGOV_WEB_DIR: path.join(root, 'web') };
    const init = this.cli('init');
    if (init.status !== 0) throw new Error(`${this.name}: egov init failed: ${init.stderr}`);
  }

  common() {
    return ['--data', this.dataDir, '--database', this.database, '--config', this.confPath];
  }

  // Runs `egov ARGS` on this node's data; returns spawnSync's result.
  cli(...args) {
    return spawnSync(bin, [...args, ...this.common()], { encoding: 'utf8', timeout: 60000, env: this.env, cwd: root });
  }

  // The same, asserting success; returns stdout.
  cliOk(...args) {
    const r = this.cli(...args);
    assert.equal(r.status, 0, `${this.name}: egov ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  async start() {
    this.out = '';
    this.child = spawn(bin, ['serve', ...this.common(), '--listen', `127.0.0.1:${this.port}`],
      { env: this.env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout.on('data', (d) => { this.out += d; });
    this.child.stderr.on('data', (d) => { this.out += d; });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 15000;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`${this.name}: egov serve exited early: ${this.out}`);
      try {
        const r = await fetch(`${this.url}/healthz`);
        if (r.status === 200) break;
      } catch { /* not yet */ }
      if (Date.now() > deadline) {
        this.child.kill('SIGKILL');
        throw new Error(`${this.name}: egov serve not ready: ${this.out}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  logs() {
    return this.out.split('\n').filter((l) => !l.includes('"event":"access"')).slice(-60).join('\n');
  }

  // SIGTERM and wait: { code, signal }.
  async stop() {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 15000);
    const e = await this.exited;
    clearTimeout(t);
    return e;
  }

  async kill() {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.kill('SIGKILL');
    return this.exited;
  }

  // SQL on this node's database with the backend's own client.
  sql(statement) {
    if (this.database.startsWith('sqlite:')) {
      const r = spawnSync('sqlite3', ['-batch', '-cmd', '.timeout 5000', this.database.slice('sqlite:'.length), statement], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`sqlite3: ${r.stderr}`);
      return r.stdout.trim();
    }
    return psql(this.database, statement);
  }

  cleanup() {
    if (this.pg) this.pg.drop();
  }
}

function openssl(args) {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

// ---- requests ---------------------------------------------------------------------

function parseJson(text) {
  try { return JSON.parse(text); } catch { return undefined; }
}

// fetch, read: { status, headers, text, json, body (Buffer) }.
export async function request(url, { method = 'GET', headers = {}, body } = {}) {
  const res = await fetch(url, { method, headers, body, redirect: 'manual' });
  const buf = Buffer.from(await res.arrayBuffer());
  const text = buf.toString('utf8');
  return { status: res.status, headers: res.headers, text, json: parseJson(text), body: buf };
}

// An HTTPS request with a client certificate, straight to a gateway's
// peer listener (what another gateway would send). The server's
// certificate is not checked here: the tests are about what the server
// accepts.
export function peerRequest(node, p, { method = 'GET', headers = {}, body, key, cert } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port: node.peerPort, path: p, method, headers, key, cert, rejectUnauthorized: false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        resolve({ status: res.statusCode, headers: new Headers(Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)])), text, json: parseJson(text), body: buf });
      });
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

// ---- the wire format, independently of the C code -------------------------------
export const sha256hex = (b) => crypto.createHash('sha256').update(b ?? Buffer.alloc(0)).digest('hex');
export const certSha256 = (pem) => sha256hex(new crypto.X509Certificate(pem).raw);

export function canonRequest(f) {
  return ['egov-exchange/1 request', f.messageId, f.client, f.service, f.method, f.path, f.contentType ?? '',
    f.representedParty ?? '', f.dataSubject ?? '', f.purpose ?? '', f.signedAt, sha256hex(f.body)].join('\n');
}

export function canonResponse(f) {
  return ['egov-exchange/1 response', f.messageId, f.service, String(f.status), f.contentType ?? '',
    f.requestSig, f.signedAt, sha256hex(f.body)].join('\n');
}

export const es256sign = (keyPem, text) =>
  crypto.sign('sha256', Buffer.from(text, 'utf8'), { key: keyPem, dsaEncoding: 'ieee-p1363' }).toString('base64url');

export const es256verify = (certPem, text, sig) =>
  crypto.verify('sha256', Buffer.from(text, 'utf8'), { key: new crypto.X509Certificate(certPem).publicKey, dsaEncoding: 'ieee-p1363' },
    Buffer.from(sig, 'base64url'));

// Headers of a request signed as `client` with keyPem/certPem, for
// peerRequest(). f: { messageId, client, service, method, path, body,
// contentType, signedAt? }.
export function signedHeaders(f, keyPem, certPem) {
  const signedAt = f.signedAt ?? new Date().toISOString();
  const sig = es256sign(keyPem, canonRequest({ ...f, signedAt }));
  const h = {
    'X-Road-Client': f.client,
    'X-Road-Id': f.messageId,
    'X-Egov-Signed-At': signedAt,
    'X-Egov-Signer-Cert': certSha256(certPem),
    'X-Egov-Signature': sig,
  };
  if (f.contentType) h['Content-Type'] = f.contentType;
  return h;
}

// ---- the fixture --------------------------------------------------------------------

// peerCaExtra: PEM text added to the gateways' peer CA bundle (another
// instance's CA, for federation); dir, be: a directory and back-end stub
// to use (and leave) rather than make.
export async function startExchange({
  backend = 'sqlite', tag = 'exchange', confValidity = 600, gatewayConf = '', centralConf = '', peerCaExtra = '',
  dir: givenDir, be: givenBe,
} = {}) {
  const dir = givenDir ?? mkdtempSync(path.join(os.tmpdir(), 'egov-ex-'));
  const be = givenBe ?? await startBackend();
  const central = new Node('central', dir, backend, tag);
  const dsaj = new Node('dsaj', dir, backend, tag);
  const dsb = new Node('dsb', dir, backend, tag);
  const closedPort = await freePort(); // nobody listens there
  const fakePort = await freePort();   // a misbehaving provider a test may start
  const ex = { dir, backend: be, central, dsaj, dsb, closedPort, fakePort, nodes: [central, dsaj, dsb], ownDir: !givenDir, ownBe: !givenBe };
  const f = (name) => path.join(dir, name);

  try {
    // Central node: the registry, the platform CA and its TSA.
    await central.prepare((n) => `[server]\nrole = central\nadmin_token = ${ADMIN_TOKEN}\n`
      + `[pki]\npublic_url = ${n.url}\n[exchange]\nconf_validity_s = ${confValidity}\n${centralConf}`);
    central.cliOk('exchange', 'central', 'init');
    writeFileSync(f('ca.pem'), readFileSync(path.join(central.dataDir, 'pki/root.crt'), 'utf8')
      + readFileSync(path.join(central.dataDir, 'pki/issuing.crt'), 'utf8') + peerCaExtra);
    writeFileSync(f('central.crt'), readFileSync(path.join(central.dataDir, 'exchange/central.crt')));
    await central.start();

    for (const g of [dsaj, dsb]) {
      g.port = await freePort();
      g.peerPort = await freePort();
      g.peerUrl = `https://127.0.0.1:${g.peerPort}`;
    }
    const reg = (...a) => central.cliOk('exchange', ...a);
    reg('member', 'add', IDS.DSAJ, 'Direcção dos Serviços de Assuntos de Justiça');
    reg('member', 'add', IDS.DSB, 'Direcção dos Serviços de Identificação');
    reg('subsystem', 'add', IDS.REG, '--gateway', dsaj.peerUrl);
    reg('subsystem', 'add', IDS.DOWN, '--gateway', `https://127.0.0.1:${closedPort}`);
    reg('subsystem', 'add', IDS.FAKE, '--gateway', `https://127.0.0.1:${fakePort}`);
    reg('subsystem', 'add', IDS.APP, '--gateway', dsb.peerUrl);
    reg('subsystem', 'add', IDS.OTHER, '--gateway', dsb.peerUrl);
    writeFileSync(f('persons.json'), JSON.stringify(PERSONS_OPENAPI));
    reg('service', 'add', `${IDS.REG}/persons`, '--title', 'Persons', '--log', 'full', '--max-body', '1048576',
      '--openapi', f('persons.json'));
    reg('service', 'add', `${IDS.REG}/small`, '--log', 'digest', '--max-body', '1024');
    for (const s of ['restricted', 'secret', 'down', 'nobackend']) reg('service', 'add', `${IDS.REG}/${s}`);
    reg('service', 'add', `${IDS.DOWN}/svc`);
    reg('service', 'add', `${IDS.FAKE}/svc`);
    reg('access', 'grant', IDS.APP, `${IDS.FAKE}/svc`);
    for (const s of ['persons', 'small', 'down', 'nobackend']) reg('access', 'grant', IDS.APP, `${IDS.REG}/${s}`);
    reg('access', 'grant', IDS.APP, `${IDS.REG}/restricted`, '--methods', 'GET', '--paths', '/allowed/*');
    reg('access', 'grant', IDS.APP, `${IDS.DOWN}/svc`);

    // Gateways: keys made on the gateway, certificates issued by the
    // central node's CA, installed back on the gateway.
    const gwConf = (n) => `[server]\nrole = gateway\nadmin_token = ${ADMIN_TOKEN}\n`
      + `peer_listen = 127.0.0.1:${n.peerPort}\npeer_tls_cert = ${n.dataDir}/tls.crt\n`
      + `peer_tls_key = ${n.dataDir}/tls.key\npeer_tls_ca = ${f('ca.pem')}\n`
      + `[exchange]\ncentral_url = ${central.url}\ncentral_cert = ${f('central.crt')}\n`
      + `gateway_url = ${n.peerUrl}\nconf_refresh_s = 1\ntimestamp_interval_s = 1\n${gatewayConf}`;
    for (const [g, sub] of [[dsaj, IDS.REG], [dsb, IDS.APP]]) {
      await g.prepare(gwConf);
      const csr = g.cliOk('exchange', 'keygen', sub);
      writeFileSync(f(`${g.name}-sign.csr`), csr);
      writeFileSync(f(`${g.name}-sign.crt`), reg('cert', 'issue', sub, '--usage', 'sign', '--csr', f(`${g.name}-sign.csr`)));
      g.cliOk('exchange', 'cert', 'install', sub, f(`${g.name}-sign.crt`));
      openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', path.join(g.dataDir, 'tls.key'), '-subj', `/CN=gateway ${g.name}`, '-out', f(`${g.name}-tls.csr`)]);
      writeFileSync(path.join(g.dataDir, 'tls.crt'), reg('cert', 'issue', sub, '--usage', 'tls', '--csr', f(`${g.name}-tls.csr`)));
      g.signKey = readFileSync(path.join(g.dataDir, 'exchange/keys', `${sub.replaceAll('/', '+')}.key`), 'utf8');
      g.signCert = readFileSync(f(`${g.name}-sign.crt`), 'utf8');
      g.tlsKey = readFileSync(path.join(g.dataDir, 'tls.key'), 'utf8');
      g.tlsCert = readFileSync(path.join(g.dataDir, 'tls.crt'), 'utf8');
    }
    // The DOWN subsystem has a gateway certificate too, but nothing
    // listens at its address.
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', f('down-tls.key'), '-subj', '/CN=gateway down', '-out', f('down-tls.csr')]);
    reg('cert', 'issue', IDS.DOWN, '--usage', 'tls', '--csr', f('down-tls.csr'));
    // FAKE's gateway is whatever a test starts on fakePort with this key.
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', f('fake-tls.key'), '-subj', '/CN=gateway fake', '-out', f('fake-tls.csr')]);
    writeFileSync(f('fake-tls.crt'), reg('cert', 'issue', IDS.FAKE, '--usage', 'tls', '--csr', f('fake-tls.csr')));
    ex.fakeTlsKey = readFileSync(f('fake-tls.key'), 'utf8');
    ex.fakeTlsCert = readFileSync(f('fake-tls.crt'), 'utf8');

    dsaj.cliOk('exchange', 'backend', 'set', `${IDS.REG}/persons`, be.url, '--timeout-ms', '1500');
    for (const s of ['small', 'restricted', 'secret']) dsaj.cliOk('exchange', 'backend', 'set', `${IDS.REG}/${s}`, be.url);
    dsaj.cliOk('exchange', 'backend', 'set', `${IDS.REG}/down`, `http://127.0.0.1:${closedPort}`);

    await dsaj.start();
    await dsb.start();
    await waitForConf(dsaj);
    await waitForConf(dsb);
  } catch (e) {
    await stopAll(ex);
    throw e;
  }

  ex.call = (p, { method = 'GET', headers = {}, body, client = IDS.APP, via = dsb } = {}) =>
    request(`${via.url}/r1/${p}`, { method, headers: client ? { 'X-Road-Client': client, ...headers } : headers, body });
  ex.stop = () => stopAll(ex);
  return ex;
}

// Waits until a gateway holds a valid global configuration.
export async function waitForConf(node, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(`${node.url}/r1/listClients`);
      if (r.status === 200) return;
    } catch { /* restarting */ }
    if (Date.now() > deadline) throw new Error(`${node.name}: no global configuration in time:\n${node.logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Waits until the gateway's configuration has reached the central's
// current version (after a registry change).
// `egov exchange conf show` prints "name<TAB>value" lines.
const confVersion = (out) => Number(/^version\t(\d+)$/m.exec(out ?? '')?.[1] ?? -1);

export async function waitForVersion(node, central) {
  const want = confVersion(central.cliOk('exchange', 'conf', 'show'));
  assert.ok(want > 0, 'the central node has a configuration');
  const deadline = Date.now() + 20000;
  for (;;) {
    const r = node.cli('exchange', 'conf', 'show');
    if (r.status === 0 && confVersion(r.stdout) >= want) {
      await new Promise((res) => setTimeout(res, 200));
      return;
    }
    if (Date.now() > deadline) throw new Error(`${node.name}: configuration version ${want} not reached`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

async function stopAll(ex) {
  const exits = {};
  for (const n of ex.nodes) exits[n.name] = await n.stop();
  if (ex.ownBe !== false) await ex.backend.close();
  for (const n of ex.nodes) n.cleanup();
  if (ex.ownDir !== false) rmSync(ex.dir, { recursive: true, force: true });
  return exits;
}

// ---- federation: a second instance ------------------------------------------------

export const HK = {
  IMMD: 'HK/GOV/IMMD',
  REG: 'HK/GOV/IMMD/REG',
};

// The CA bundle of a central node (what gateways trust for its
// instance's TLS certificates and time stamps).
const caOf = (central) => readFileSync(path.join(central.dataDir, 'pki/root.crt'), 'utf8')
  + readFileSync(path.join(central.dataDir, 'pki/issuing.crt'), 'utf8');

// Waits until gateway node holds the configuration of instance, attached
// to its own (listClients?instanceId= lists its subsystems), or, with
// present false, until it no longer does.
export async function waitForInstance(node, instance, present = true, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await request(`${node.url}/r1/listClients?instanceId=${instance}`);
      if (r.status === 200 && (r.json.member.length > 0) === present) return;
    } catch { /* restarting */ }
    if (Date.now() > deadline) {
      throw new Error(`${node.name}: instance ${instance} ${present ? 'not attached' : 'still attached'} in time:\n${node.logs()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Waits until gateway node's kept copy of instance's configuration has
// reached the version of that instance's central node (`egov exchange
// conf show` prints "federated<TAB>INSTANCE<TAB>VERSION<TAB>..." lines).
export async function waitForFederatedVersion(node, instance, central) {
  const want = confVersion(central.cliOk('exchange', 'conf', 'show'));
  const deadline = Date.now() + 20000;
  for (;;) {
    const r = node.cli('exchange', 'conf', 'show');
    const m = new RegExp(`^federated\t${instance}\t(\\d+)\t`, 'm').exec(r.stdout ?? '');
    if (m && Number(m[1]) >= want) {
      await new Promise((res) => setTimeout(res, 200));
      return;
    }
    if (Date.now() > deadline) throw new Error(`${node.name}: ${instance}'s configuration version ${want} not reached:\n${r.stdout}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

export async function startFederation({ backend = 'sqlite', tag = 'fed', gatewayConf = '' } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'egov-fed-'));
  const be = await startBackend();
  const central = new Node('hkcentral', dir, backend, tag);
  const gw = new Node('hkgw', dir, backend, tag);
  const hk = { central, gw, nodes: [central, gw] };
  const fx = { dir, backend: be, hk, mo: null };
  const f = (name) => path.join(dir, name);
  const fedConf = `federation_refresh_s = 1\n${gatewayConf}`;

  try {
    // HK's central node first: the MO gateways must trust its CA.
    await central.prepare((n) => `[server]\nrole = central\nadmin_token = ${ADMIN_TOKEN}\n`
      + `[pki]\npublic_url = ${n.url}\n[exchange]\ninstance = HK\n`);
    central.cliOk('exchange', 'central', 'init');
    await central.start();
    fx.mo = await startExchange({ backend, tag: `${tag}mo`, dir, be, peerCaExtra: caOf(central), gatewayConf: fedConf });
    const mo = fx.mo;
    writeFileSync(f('hk-ca.pem'), caOf(central) + caOf(mo.central));
    writeFileSync(f('hk-central.crt'), readFileSync(path.join(central.dataDir, 'exchange/central.crt')));

    // HK's registry and its gateway, enrolled as MO's are.
    gw.port = await freePort();
    gw.peerPort = await freePort();
    gw.peerUrl = `https://127.0.0.1:${gw.peerPort}`;
    const reg = (...a) => central.cliOk('exchange', ...a);
    reg('member', 'add', HK.IMMD, 'Immigration Department');
    reg('subsystem', 'add', HK.REG, '--gateway', gw.peerUrl);
    writeFileSync(f('hk-persons.json'), JSON.stringify(PERSONS_OPENAPI));
    reg('service', 'add', `${HK.REG}/persons`, '--log', 'full', '--openapi', f('hk-persons.json'));
    reg('service', 'add', `${HK.REG}/nogrant`);
    await gw.prepare((n) => `[server]\nrole = gateway\nadmin_token = ${ADMIN_TOKEN}\n`
      + `peer_listen = 127.0.0.1:${n.peerPort}\npeer_tls_cert = ${n.dataDir}/tls.crt\n`
      + `peer_tls_key = ${n.dataDir}/tls.key\npeer_tls_ca = ${f('hk-ca.pem')}\n`
      + `[exchange]\ninstance = HK\ncentral_url = ${central.url}\ncentral_cert = ${f('hk-central.crt')}\n`
      + `gateway_url = ${n.peerUrl}\nconf_refresh_s = 1\ntimestamp_interval_s = 1\n${fedConf}`);
    writeFileSync(f('hk-sign.csr'), gw.cliOk('exchange', 'keygen', HK.REG));
    writeFileSync(f('hk-sign.crt'), reg('cert', 'issue', HK.REG, '--usage', 'sign', '--csr', f('hk-sign.csr')));
    gw.cliOk('exchange', 'cert', 'install', HK.REG, f('hk-sign.crt'));
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', path.join(gw.dataDir, 'tls.key'), '-subj', '/CN=gateway hk', '-out', f('hk-tls.csr')]);
    writeFileSync(path.join(gw.dataDir, 'tls.crt'), reg('cert', 'issue', HK.REG, '--usage', 'tls', '--csr', f('hk-tls.csr')));
    gw.signCert = readFileSync(f('hk-sign.crt'), 'utf8');
    for (const s of ['persons', 'nogrant']) gw.cliOk('exchange', 'backend', 'set', `${HK.REG}/${s}`, be.url);
    await gw.start();
    await waitForConf(gw);

    // Each central node trusts the other: MO's operator on the command
    // line, HK's through the admin API. HK's registry then grants MO's
    // subsystem access to its service.
    mo.central.cliOk('exchange', 'trust', 'add', 'HK', '--url', central.url, '--cert', f('hk-central.crt'));
    const t = await request(`${central.url}/api/v1/exchange/trusts`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ instance: 'MO', url: mo.central.url, certificate: readFileSync(f('central.crt'), 'utf8') }),
    });
    assert.equal(t.status, 201, t.text);
    reg('access', 'grant', IDS.APP, `${HK.REG}/persons`, '--methods', 'GET');
    await waitForInstance(mo.dsb, 'HK');
    await waitForInstance(gw, 'MO');
    await waitForVersion(mo.dsb, mo.central);
    await waitForFederatedVersion(mo.dsb, 'HK', central);
    await waitForFederatedVersion(gw, 'MO', mo.central);
  } catch (e) {
    await stopFederation(fx);
    throw e;
  }

  fx.call = (p, opts = {}) => fx.mo.call(p, opts);
  fx.stop = () => stopFederation(fx);
  return fx;
}

async function stopFederation(fx) {
  const exits = fx.mo ? await fx.mo.stop() : {};
  for (const n of fx.hk.nodes) exits[n.name] = await n.stop();
  await fx.backend.close();
  for (const n of fx.hk.nodes) n.cleanup();
  rmSync(fx.dir, { recursive: true, force: true });
  return exits;
}
