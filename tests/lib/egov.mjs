// Starts a real `egov serve` on a temporary data directory and a free
// loopback port, for API and browser tests.
//
//   const node = await startEgov({ backend: 'sqlite' | 'postgres', demo: true, env: {...}, config: 'text' });
//   node.url            'http://127.0.0.1:PORT'
//   node.dataDir        the temporary data directory
//   node.logs()         what the server printed so far (stderr)
//   await node.kill()   SIGKILL, wait for the process to be gone
//   await node.restart() serve again on the same port, data and database
//   await node.stop()   SIGTERM, wait for exit, remove the data directory
//
// EGOV_BIN picks the binary (default build/egov; the sanitizer run sets
// build/asan/egov). EGOV_TEST_PG_URL names the PostgreSQL server for the
// 'postgres' backend: each test file (one process) gets a database of its
// own beside the one named (see isolatePostgres), and each start resets its
// public schema, so neither two starts in a file nor two files run at once
// see each other's rows.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const bin = process.env.EGOV_BIN ? path.resolve(process.env.EGOV_BIN) : path.join(root, 'build/egov');

export const backends = () => {
  const b = ['sqlite'];
  if (process.env.EGOV_TEST_PG_URL) b.push('postgres');
  return b;
};

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function resetPostgres(url) {
  const r = spawnSync('psql', [url, '-q', '-v', 'ON_ERROR_STOP=1', '-c',
    'DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`resetting PostgreSQL failed: ${r.stderr}`);
}

export function psql(url, sql) {
  const r = spawnSync('psql', [url, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
  return r.stdout.trim();
}

// ---- PostgreSQL isolation --------------------------------------------------
// A start resets the public schema of its database, so two test files on one
// database would wipe each other's rows. Each test file (one process) moves
// to a database of its own when the role may create one: named after the tag
// the caller gives, or else after the file (tests/api/kernel.test.mjs ->
// <database>_api_kernel), and dropped when the process exits. Otherwise the
// file holds a lock directory for as long as it uses PostgreSQL, and files
// take turns.
let pgReady = false;

const fileTag = () => {
  const f = process.argv[1] ?? `pid${process.pid}`;
  return `${path.basename(path.dirname(f))}_${path.basename(f).replace(/\.test\.mjs$|\.mjs$/, '')}`;
};

export async function isolatePostgres(tag = fileTag()) {
  if (pgReady) return;
  const base = process.env.EGOV_TEST_PG_URL;
  if (!base) throw new Error('EGOV_TEST_PG_URL is not set');
  try {
    const u = new URL(base);
    const db = decodeURIComponent(u.pathname.slice(1)) || 'postgres';
    const name = `${db}_${tag}`.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 63);
    psql(base, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    psql(base, `CREATE DATABASE "${name}"`);
    u.pathname = `/${name}`;
    process.env.EGOV_TEST_PG_URL = u.toString();
    process.on('exit', () => {
      spawnSync('psql', [base, '-X', '-q', '-c', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`]);
    });
    pgReady = true;
    return;
  } catch { /* no CREATEDB: fall back to a lock */ }
  const lock = path.join(os.tmpdir(), `egov-api-pg-${Buffer.from(base).toString('hex').slice(-32)}.lock`);
  const deadline = Date.now() + 180000;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      let holder = 0;
      try { holder = Number(readFileSync(path.join(lock, 'pid'), 'utf8')); } catch { /* being created */ }
      if (holder) {
        try { process.kill(holder, 0); } catch { rmSync(lock, { recursive: true, force: true }); continue; }
      }
      if (Date.now() > deadline) throw new Error(`waited too long for ${lock}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  process.on('exit', () => rmSync(lock, { recursive: true, force: true }));
  pgReady = true;
}

export function run(args, opts = {}) {
  return spawnSync(bin, args, { encoding: 'utf8', timeout: 30000, ...opts });
}

export async function startEgov({ backend = 'sqlite', demo = true, env = {}, config = null, args = [], tag } = {}) {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'egov-api-'));
  const port = await freePort();
  let database = `sqlite:${dataDir}/egov.db`;
  if (backend === 'postgres') {
    await isolatePostgres(tag);
    database = process.env.EGOV_TEST_PG_URL;
    resetPostgres(database);
  }
  const common = ['--data', dataDir, '--database', database];
  if (config !== null) {
    writeFileSync(path.join(dataDir, 'test.conf'), config);
    common.push('--config', path.join(dataDir, 'test.conf'));
  }
  const fullEnv = { ...process.env, EGOV_WEB_DIR: path.join(root, 'web'), ...env };
  const init = run(['init', ...(demo ? ['--demo'] : []), ...common], { env: fullEnv, cwd: root });
  if (init.status !== 0) throw new Error(`egov init failed (${init.status}): ${init.stderr}`);
  const url = `http://127.0.0.1:${port}`;
  let out = '';
  const node = { url, port, dataDir, database, child: null, exited: null, logs: () => out };

  // Starts `egov serve` and waits until /healthz answers 200.
  const serve = async () => {
    const child = spawn(bin, ['serve', ...common, '--listen', `127.0.0.1:${port}`, ...args],
      { env: fullEnv, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    node.child = child;
    node.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 10000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`egov serve exited early: ${out}`);
      try {
        const r = await fetch(`${url}/healthz`);
        if (r.status === 200) break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`egov serve not ready: ${out}`); }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const running = () => node.child.exitCode === null && node.child.signalCode === null;

  node.kill = async () => {
    if (running()) node.child.kill('SIGKILL');
    return node.exited;
  };
  node.restart = async () => {
    if (running()) throw new Error('egov is still running');
    await serve();
  };
  node.stop = async ({ keepData = false } = {}) => {
    if (running()) {
      node.child.kill('SIGTERM');
      const t = setTimeout(() => node.child.kill('SIGKILL'), 10000);
      await node.exited;
      clearTimeout(t);
    }
    if (!keepData) rmSync(dataDir, { recursive: true, force: true });
    return node.exited;
  };
  await serve();
  return node;
}
