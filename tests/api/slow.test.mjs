// Slow clients: a connection that sends half a request line and stalls is
// closed after server.timeout_s, and the server answers others meanwhile.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { backends } from '../lib/egov.mjs';
import { request, start, stopClean } from './lib/http.mjs';

function stall(port, first) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1', () => s.write(first));
    const done = (how) => {
      s.destroy();
      resolve({ how, ms: Date.now() - t0 });
    };
    const guard = setTimeout(() => done('still open'), 12000);
    s.on('close', () => { clearTimeout(guard); done('closed'); });
    s.on('error', () => {});
    s.resume(); // read (and drop) answers so 'close' is seen
  });
}

for (const backend of backends()) {
describe(`slow clients (${backend})`, () => {
  let node;
  before(async () => { node = await start(backend, 'slow', { config: '[server]\ntimeout_s = 2\n' }); });
  after(async () => { await stopClean(node); });

  test('half a request line is dropped after timeout_s while others are served', async () => {
    const stalled = Array.from({ length: 20 }, () => stall(node.port, 'GET /heal'));
    // Meanwhile the server answers normal requests promptly.
    for (let i = 0; i < 10; i++) {
      const t0 = Date.now();
      const r = await request(node, '/healthz');
      assert.equal(r.status, 200);
      assert.ok(Date.now() - t0 < 1000, 'answered while slow clients hang on');
      await new Promise((res) => setTimeout(res, 100));
    }
    for (const s of await Promise.all(stalled)) {
      assert.equal(s.how, 'closed', 'the stalled connection was closed');
      assert.ok(s.ms >= 1500 && s.ms <= 5000, `closed after ${s.ms} ms (timeout_s = 2)`);
    }
  });

  test('an idle keep-alive connection is closed after timeout_s', async () => {
    const s = await stall(node.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(s.how, 'closed');
    assert.ok(s.ms >= 1500 && s.ms <= 5000, `closed after ${s.ms} ms`);
  });
});
}
