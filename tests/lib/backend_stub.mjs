// A department's back-end service for the exchange tests: a plain node
// HTTP server on 127.0.0.1 that the provider gateway forwards to.
//
//   const be = await startBackend();
//   be.url                  'http://127.0.0.1:PORT'
//   be.requests             every request seen: { method, url, headers, body }
//   await be.close()
//
// Paths (after the service's part of the URL):
//   /slow/{ms}[/...]     answers 200 after ms milliseconds
//   /status/{code}       answers that status with a small JSON body
//   /large/{n}           answers n bytes of text/plain
//   /empty               answers 204 without a body
//   /sink                reads the body without keeping it and answers
//                        {length, sha256} (large-payload tests)
//   /pattern/{n}         answers n bytes of patternBytes(n), streamed
//   anything else        echoes the request as JSON: method, url, the
//                        X-Road-* / X-Egov-* headers, content type, body
//                        (over 4 KiB: its length and SHA-256)
import crypto from 'node:crypto';
import http from 'node:http';

const ECHOED = ['content-type', 'accept', 'x-road-client', 'x-road-service', 'x-road-id',
  'x-road-represented-party', 'x-egov-data-subject', 'x-egov-purpose', 'x-egov-signature', 'x-request-id'];

// A deterministic, non-repeating-looking byte pattern: a reordered or
// dropped chunk changes its digest (a run of one byte would not show it).
// Computed once and sliced (a byte loop over megabytes per call would make
// the stub, not the gateways, the bottleneck). Callers must not modify it.
let patternCache = Buffer.alloc(0);
export function patternBytes(n, from = 0) {
  if (patternCache.length < from + n) {
    const len = Math.max(from + n, 2 * patternCache.length);
    const b = Buffer.allocUnsafe(len);
    for (let k = 0; k < len; k++) b[k] = (k * 31 + (k >>> 11) + (k >>> 19)) & 255;
    patternCache = b;
  }
  return patternCache.subarray(from, from + n);
}

export async function startBackend() {
  const requests = [];
  const pending = new Set();
  const server = http.createServer((req, res) => {
    const path0 = req.url.split('?')[0];
    if (path0 === '/sink') {
      const h = crypto.createHash('sha256');
      let length = 0;
      req.on('data', (c) => { h.update(c); length += c.length; });
      req.on('end', () => {
        const sha256 = h.digest('hex');
        requests.push({ method: req.method, url: req.url, headers: req.headers, body: null, length, sha256 });
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ length, sha256 }));
      });
      return;
    }
    let pm;
    if ((pm = /^\/pattern\/(\d+)$/.exec(path0))) {
      req.resume();
      req.on('end', () => {
        const n = Number(pm[1]);
        requests.push({ method: req.method, url: req.url, headers: req.headers, body: null });
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': n });
        let off = 0;
        const step = () => {
          while (off < n) {
            const len = Math.min(256 * 1024, n - off);
            const ok = res.write(patternBytes(len, off));
            off += len;
            if (!ok) { res.once('drain', step); return; }
          }
          res.end();
        };
        step();
      });
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const seen = { method: req.method, url: req.url, headers: req.headers, body };
      requests.push(seen);
      const p = req.url.split('?')[0];
      let m;
      if ((m = /^\/slow\/(\d+)/.exec(p))) {
        const t = setTimeout(() => {
          pending.delete(t);
          if (!res.destroyed) res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"slow":true}');
        }, Number(m[1]));
        pending.add(t);
        return;
      }
      if ((m = /^\/status\/(\d{3})/.exec(p))) {
        res.writeHead(Number(m[1]), { 'Content-Type': 'application/json' }).end(JSON.stringify({ status: Number(m[1]) }));
        return;
      }
      if ((m = /^\/large\/(\d+)/.exec(p))) {
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end(Buffer.alloc(Number(m[1]), 'a'));
        return;
      }
      if (p === '/empty') {
        res.writeHead(204).end();
        return;
      }
      const headers = {};
      for (const h of ECHOED) if (req.headers[h] !== undefined) headers[h] = req.headers[h];
      // Small bodies come back whole, large ones as their digest.
      const out = JSON.stringify({
        method: req.method, url: req.url, headers, length: body.length,
        ...(body.length <= 4096 ? { body: body.toString('utf8') } : { sha256: crypto.createHash('sha256').update(body).digest('hex') }),
      });
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'X-Backend': 'stub' }).end(out);
    });
  });
  server.keepAliveTimeout = 30000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    async close() {
      for (const t of pending) clearTimeout(t);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
