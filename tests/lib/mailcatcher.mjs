// A small SMTP server on 127.0.0.1 for tests and local development: it
// speaks enough of RFC 5321 for egov's mail delivery (EHLO/HELO, MAIL FROM,
// RCPT TO, DATA with dot-unstuffing, RSET, NOOP, QUIT, and AUTH PLAIN/LOGIN
// when given credentials), keeps every message in memory and lets a test
// wait for the next message to an address.
//
//   const mc = await startMailcatcher();          // { port, messages, ... }
//   const m = await mc.waitFor('a@example.org');  // { from, to, data, headers, subject, text }
//   mc.failNext('rcpt', 550, 'no such user');     // scripted refusals
//   await mc.stop();
//
// Run on its own: `node tests/lib/mailcatcher.mjs [port]` prints each
// message it receives (headers decoded, body decoded) to stdout.
import net from 'node:net';
import { fileURLToPath } from 'node:url';

// RFC 2047 encoded-words (B and Q) in a header value.
export function decodeWords(value) {
  return value.replace(/\r?\n[ \t]/g, ' ')
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_, charset, enc, text) => {
      const bytes = enc.toUpperCase() === 'B'
        ? Buffer.from(text, 'base64')
        : Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g,
          (_m, h) => String.fromCharCode(parseInt(h, 16))), 'latin1');
      return new TextDecoder(charset.toLowerCase()).decode(bytes);
    });
}

// Splits a raw message into headers (lower-cased names, unfolded,
// decoded) and the decoded text body.
export function parseMessage(raw) {
  const sep = raw.indexOf('\r\n\r\n');
  const head = sep < 0 ? raw : raw.slice(0, sep);
  const body = sep < 0 ? '' : raw.slice(sep + 4);
  const headers = {};
  for (const line of head.replace(/\r\n[ \t]/g, ' ').split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  const cte = (headers['content-transfer-encoding'] || '7bit').toLowerCase();
  let text;
  if (cte === 'base64') text = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  else if (cte === 'quoted-printable') {
    text = Buffer.from(body.replace(/=\r\n/g, '').replace(/=([0-9A-Fa-f]{2})/g,
      (_m, h) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
  } else text = Buffer.from(body, 'latin1').toString('utf8');
  const decoded = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, decodeWords(v)]));
  return { headers: decoded, rawHeaders: headers, subject: decoded.subject || '', text };
}

export async function startMailcatcher({ port = 0, user = null, password = null } = {}) {
  const messages = [];
  const waiters = [];
  const failures = []; // { stage, code, text }
  const sessions = new Set();
  const log = [];       // every command line received, for tests

  function deliver(msg) {
    messages.push(msg);
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i];
      if (msg.to.includes(w.addr)) { waiters.splice(i, 1); clearTimeout(w.timer); w.resolve(msg); }
    }
  }

  function takeFailure(stage) {
    const i = failures.findIndex((f) => f.stage === stage);
    return i < 0 ? null : failures.splice(i, 1)[0];
  }

  const server = net.createServer((sock) => {
    sessions.add(sock);
    sock.on('close', () => sessions.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    let st = { from: null, to: [], data: false, lines: [], authed: !user, auth: null };
    const send = (s) => { if (!sock.destroyed) sock.write(`${s}\r\n`); };
    const reset = () => { st = { ...st, from: null, to: [], data: false, lines: [] }; };
    const fail = (stage) => {
      const f = takeFailure(stage);
      if (f) send(`${f.code} ${f.text}`);
      return !!f;
    };
    if (takeFailure('connect')) { sock.destroy(); return; }
    if (!fail('greeting')) send('220 mailcatcher ESMTP ready');

    function line(l) {
      if (st.data) {
        if (l === '.') {
          st.data = false;
          if (fail('message')) { reset(); return; }
          const raw = st.lines.join('\r\n') + '\r\n';
          const msg = { from: st.from, to: [...st.to], raw, ...parseMessage(raw), receivedAt: Date.now() };
          send('250 2.0.0 queued');
          reset();
          deliver(msg);
        } else st.lines.push(l.startsWith('.') ? l.slice(1) : l);
        return;
      }
      if (st.auth) {
        const v = Buffer.from(l, 'base64').toString('utf8');
        if (st.auth.step === 'user') { st.auth = { step: 'pass', user: v }; send('334 UGFzc3dvcmQ6'); return; }
        const ok = st.auth.user === user && v === password;
        st.auth = null;
        st.authed = ok;
        send(ok ? '235 2.7.0 authenticated' : '535 5.7.8 bad credentials');
        return;
      }
      log.push(l);
      const [verb, ...rest] = l.split(' ');
      const arg = rest.join(' ');
      const v = verb.toUpperCase();
      if (v === 'EHLO') {
        if (fail('ehlo')) return;
        reset();
        send('250-mailcatcher');
        send('250-8BITMIME');
        if (user) send('250-AUTH PLAIN LOGIN');
        send('250 SIZE 10485760');
      } else if (v === 'HELO') { reset(); send('250 mailcatcher'); }
      else if (v === 'AUTH') {
        const [mech, initial] = arg.split(' ');
        if (mech.toUpperCase() === 'PLAIN' && initial) {
          const parts = Buffer.from(initial, 'base64').toString('utf8').split('\0');
          st.authed = parts[1] === user && parts[2] === password;
          send(st.authed ? '235 2.7.0 authenticated' : '535 5.7.8 bad credentials');
        } else if (mech.toUpperCase() === 'LOGIN') { st.auth = { step: 'user' }; send('334 VXNlcm5hbWU6'); }
        else send('504 5.5.4 mechanism not supported');
      } else if (v === 'MAIL') {
        if (!st.authed) { send('530 5.7.0 authentication required'); return; }
        if (fail('mail')) return;
        const m = /^FROM:<([^>]*)>/i.exec(arg);
        if (!m) { send('501 5.5.4 syntax: MAIL FROM:<address>'); return; }
        st.from = m[1]; st.to = [];
        send('250 2.1.0 ok');
      } else if (v === 'RCPT') {
        if (!st.from) { send('503 5.5.1 MAIL first'); return; }
        if (fail('rcpt')) return;
        const m = /^TO:<([^>]+)>/i.exec(arg);
        if (!m) { send('501 5.5.4 syntax: RCPT TO:<address>'); return; }
        st.to.push(m[1].toLowerCase());
        send('250 2.1.5 ok');
      } else if (v === 'DATA') {
        if (!st.to.length) { send('503 5.5.1 RCPT first'); return; }
        if (fail('data')) return;
        st.data = true; st.lines = [];
        send('354 end data with <CR><LF>.<CR><LF>');
      } else if (v === 'RSET') { reset(); send('250 2.0.0 ok'); }
      else if (v === 'NOOP') send('250 2.0.0 ok');
      else if (v === 'QUIT') { send('221 2.0.0 bye'); sock.end(); }
      else send('502 5.5.2 command not implemented');
    }

    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > 20 * 1024 * 1024) { sock.destroy(); return; }
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const l = buf.subarray(0, i).toString('latin1');
        buf = buf.subarray(i + 2);
        line(l);
      }
    });
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });

  return {
    port: server.address().port,
    messages,
    commands: log,
    // Resolves with the first message (already received or to come) whose
    // recipients include addr; rejects after timeoutMs.
    waitFor(addr, { timeoutMs = 10000, after = 0 } = {}) {
      const a = addr.toLowerCase();
      const have = messages.find((m) => m.to.includes(a) && m.receivedAt >= after);
      if (have) return Promise.resolve(have);
      return new Promise((resolve, reject) => {
        const w = { addr: a, resolve, timer: null };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no mail to ${addr} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    to(addr) { return messages.filter((m) => m.to.includes(addr.toLowerCase())); },
    // The next time stage is reached ('connect', 'greeting', 'ehlo',
    // 'mail', 'rcpt', 'data', 'message'), answer code text instead
    // ('connect' drops the connection at once).
    failNext(stage, code = 451, text = 'try again later', times = 1) {
      for (let i = 0; i < times; i++) failures.push({ stage, code, text });
    },
    clearFailures() { failures.length = 0; },
    async stop() {
      for (const s of sessions) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const mc = await startMailcatcher({ port: Number(process.argv[2] || 2525) });
  console.log(`mailcatcher listening on 127.0.0.1:${mc.port}`);
  const push = mc.messages.push.bind(mc.messages);
  mc.messages.push = (m) => {
    console.log(`--- ${new Date(m.receivedAt).toISOString()} from <${m.from}> to ${m.to.map((t) => `<${t}>`).join(', ')}`);
    console.log(`Subject: ${m.subject}\n\n${m.text}`);
    return push(m);
  };
}
