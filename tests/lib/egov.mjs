// Starts a real `egov serve` on a temporary data directory and a free
// loopback port, for API and browser tests.
//
//   const node = await startEgov({ backend: 'sqlite' | 'postgres', demo: true, env: {...}, config: 'text' });
//   node.url            'http://127.0.0.1:PORT'
//   node.dataDir        the temporary data directory
//   node.logs()         what the server printed so far (stderr)
//   await node.stop()   SIGTERM, wait for exit, remove the data directory
//
// EGOV_BIN picks the binary (default build/egov; the sanitizer run sets
// build/asan/egov). EGOV_TEST_PG_URL names the PostgreSQL database for the
// 'postgres' backend; each start resets its public schema so runs do not
// see each other's rows.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

export function run(args, opts = {}) {
  return spawnSync(bin, args, { encoding: 'utf8', timeout: 30000, ...opts });
}

export async function startEgov({ backend = 'sqlite', demo = true, env = {}, config = null, args = [] } = {}) {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'egov-api-'));
  const port = await freePort();
  let database = `sqlite:${dataDir}/egov.db`;
  if (backend === 'postgres') {
    database = process.env.EGOV_TEST_PG_URL;
    if (!database) throw new Error('EGOV_TEST_PG_URL is not set');
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
  const child = spawn(bin, ['serve', ...common, '--listen', `127.0.0.1:${port}`, ...args],
    { env: fullEnv, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
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
  return {
    url, port, dataDir, database, child, exited,
    logs: () => out,
    async stop({ keepData = false } = {}) {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10000);
        await exited;
        clearTimeout(t);
      }
      if (!keepData) rmSync(dataDir, { recursive: true, force: true });
      return exited;
    },
  };
}
