// The command line: version, refusing a bad config, and SIGTERM draining.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { backends, freePort, run } from '../lib/egov.mjs';
import { request, start } from './lib/http.mjs';

const SEMVER = /\b(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?\b/;

test('egov version prints the version', () => {
  const r = run(['version']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, SEMVER);
});

test('egov serve refuses a config with an unknown key, naming it', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'egov-api-cli-'));
  try {
    writeFileSync(path.join(dir, 'bad.conf'), '[server]\nthreads = 2\nno_such_key = 1\n');
    const port = await freePort();
    const r = run(['serve', '--config', path.join(dir, 'bad.conf'), '--data', dir, '--listen', `127.0.0.1:${port}`], { timeout: 10000 });
    assert.ok(r.status !== null, 'egov serve started instead of refusing the config');
    assert.notEqual(r.status, 0);
    assert.match(`${r.stdout}${r.stderr}`, /no_such_key/);
    writeFileSync(path.join(dir, 'bad2.conf'), '[server]\ntimeout_s = many\n');
    const r2 = run(['serve', '--config', path.join(dir, 'bad2.conf'), '--data', dir, '--listen', `127.0.0.1:${port}`], { timeout: 10000 });
    assert.ok(r2.status !== null && r2.status !== 0, 'a bad value is refused');
    assert.match(`${r2.stdout}${r2.stderr}`, /timeout_s/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unknown command or option exits non-zero', () => {
  const r = run(['no-such-command']);
  assert.ok(r.status !== null && r.status !== 0);
  const r2 = run(['serve', '--no-such-option']);
  assert.ok(r2.status !== null && r2.status !== 0);
});

for (const backend of backends()) {
  test(`SIGTERM: a request in flight gets its whole answer and egov exits 0 (${backend})`, async () => {
    const node = await start(backend, 'cli');
    try {
      const version = (await request(node, '/api/v1/version')).json.version;
      assert.match(run(['version']).stdout, new RegExp(version.replace(/\./g, '\\.')), 'CLI and API agree on the version');
      // A request whose answer is large, sent just before the signal.
      const body = new Promise((resolve, reject) => {
        const s = net.connect(node.port, '127.0.0.1', () => {
          s.write('GET /api/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
          setTimeout(() => node.child.kill('SIGTERM'), 5);
        });
        const chunks = [];
        s.on('data', (d) => chunks.push(d));
        s.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        s.on('error', reject);
      });
      const text = await body;
      assert.match(text, /^HTTP\/1\.1 200/);
      const json = text.slice(text.indexOf('\r\n\r\n') + 4);
      assert.equal(JSON.parse(json).openapi, '3.1.0', 'the whole body arrived');
      const t0 = Date.now();
      // The guard timer is cleared once egov has exited: left running, it
      // would keep this file's process alive for its 15 s.
      let guard;
      const exit = await Promise.race([node.exited, new Promise((r) => { guard = setTimeout(() => r('timeout'), 15000); })]);
      clearTimeout(guard);
      assert.notEqual(exit, 'timeout', 'egov did not exit after SIGTERM');
      assert.deepEqual(exit, { code: 0, signal: null }, node.logs());
      assert.ok(Date.now() - t0 < 15000);
      // After exit nobody is listening.
      await assert.rejects(fetch(`${node.url}/healthz`));
    } finally {
      await node.stop();
    }
  });
}
