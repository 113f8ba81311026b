// exchange_nodes.mjs: starts the data exchange nodes for bench/exchange_bench.sh
// with the same fixture the API tests use (tests/lib/exchange.mjs): a central
// node, the provider gateway of MO/GOV/DSAJ/REG and the consumer gateway of
// MO/GOV/DSB/APP, each on SQLite, enrolled through the CLI. The service
// MO/GOV/DSAJ/REG/persons (log mode full) is pointed at BACKEND_URL, the
// benchmark's back-end stub, so the direct run, the nginx chain and the
// gateway pair all end at the same server.
//
// Usage: EGOV_BIN=... node bench/exchange_nodes.mjs BACKEND_URL INFO_FILE
// Writes INFO_FILE (key=value lines: ports and PIDs) once the consumer
// gateway has answered one call through the pair, then waits for SIGTERM
// and stops the nodes.
import { writeFileSync } from 'node:fs';
import { IDS, startExchange } from '../tests/lib/exchange.mjs';

const [backendUrl, infoFile] = process.argv.slice(2);
if (!backendUrl || !infoFile) {
  console.error('usage: node bench/exchange_nodes.mjs BACKEND_URL INFO_FILE');
  process.exit(2);
}

const ex = await startExchange({ backend: 'sqlite', tag: 'bench' });
let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  await ex.stop();
  process.exit(code);
}
process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));

try {
  ex.dsaj.cliOk('exchange', 'backend', 'set', `${IDS.REG}/persons`, backendUrl, '--timeout-ms', '10000');
  // The back-end table is reloaded every second: wait until a call reaches
  // the benchmark's back-end (its answer is not the fixture stub's).
  const deadline = Date.now() + 20000;
  let last;
  for (;;) {
    last = await ex.call(`${IDS.REG}/persons/bench`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"q":"warm-up"}',
    });
    if (last.status === 200 && last.text.startsWith('{"bench":')) break;
    if (Date.now() > deadline) throw new Error(`no answer from the bench back-end through the pair: ${last.status} ${last.text.slice(0, 200)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  writeFileSync(infoFile, [
    `consumer_port=${ex.dsb.port}`, `consumer_pid=${ex.dsb.child.pid}`,
    `provider_port=${ex.dsaj.port}`, `provider_pid=${ex.dsaj.child.pid}`,
    `central_port=${ex.central.port}`, `central_pid=${ex.central.child.pid}`,
    `consumer_data=${ex.dsb.dataDir}`, `provider_data=${ex.dsaj.dataDir}`,
    `client=${IDS.APP}`, `service=${IDS.REG}/persons`, '',
  ].join('\n'));
} catch (e) {
  console.error(String(e && e.stack || e));
  await stop(1);
}
setInterval(() => {}, 1 << 30);
