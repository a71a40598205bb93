/**
 * `npm run example:saga`: the order saga end to end. Starts nats-server with a
 * throw-away store (or uses NATS_URL), the saga orchestrator and four simulated
 * services, runs N orders and prints how they ended.
 *
 *   npm run example:saga -- --sagas 200 --failure-rate 0.1 --latency 30
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { ensureTopology, formatShow, parseConfig, startNatsServer, startSagaRole, summarize, triggerSubject, type EmbeddedNats } from 'tidemark';
import { orderSaga } from './definition.ts';
import { startOrderServices } from './services.ts';

const rate = (text: string) => {
  const value = Number(text);
  if (!(value >= 0 && value <= 1)) throw new Error(`"${text}" is not a rate between 0 and 1`);
  return value;
};

const options = new Command('example:saga')
  .addOption(new Option('--sagas <n>', 'orders to run').default(100).argParser(Number))
  .addOption(new Option('--failure-rate <p>', 'chance a step answers its business failure').default(0.05).argParser(rate))
  .addOption(new Option('--transient-rate <p>', 'chance payment answers PaymentUnavailable (retried)').default(0.1).argParser(rate))
  .addOption(new Option('--silent-rate <p>', 'chance a service never answers (the step times out)').default(0).argParser(rate))
  .addOption(new Option('--refund-failure-rate <p>', 'chance a refund fails (retried, then parked)').default(0).argParser(rate))
  .addOption(new Option('--latency <ms>', 'each answer takes up to this long').default(20).argParser(Number))
  .parse()
  .opts<{ sagas: number; failureRate: number; transientRate: number; silentRate: number; refundFailureRate: number; latency: number }>();

const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' });
let server: EmbeddedNats | undefined;
let storeDir: string | undefined;
if (!process.env.NATS_URL) {
  storeDir = mkdtempSync(join(tmpdir(), 'tidemark-example-saga-'));
  server = await startNatsServer({ storeDir, port: 0 });
}
const url = process.env.NATS_URL ?? server!.url;
const config = parseConfig({ sagas: { ackWait: '5s' } }, { NATS_URL: url }, 'example');
const nc = await connect({ servers: url });
const js = jetstream(nc);
const jsm = await jetstreamManager(nc);
await ensureTopology(jsm, config);

const role = await startSagaRole({ config, nc, js, jsm, logger, definitions: [orderSaga] });
const services = await startOrderServices({
  js,
  jsm,
  logger,
  behaviour: { failureRate: options.failureRate, transientRate: options.transientRate, silentRate: options.silentRate, undoFailureRate: options.refundFailureRate, latencyMs: options.latency },
});

const run = Date.now().toString(36);
const ids = Array.from({ length: options.sagas }, (_, i) => `${run}-${i}`);
process.stdout.write(`running ${ids.length} order sagas on ${url}${server ? ' (embedded nats-server)' : ''}\n`);
const started = Date.now();
await Promise.all(
  ids.map((id, i) =>
    js.publish(
      triggerSubject('order'),
      JSON.stringify({ id, data: { orderId: id, customer: `c-${i % 17}`, address: `${i} Harbour Rd`, items: [{ sku: 'tea', price: '129.90', qty: 1 + (i % 3) }] } }),
      { msgID: `example:${id}` },
    ),
  ),
);

const ENDED = new Set(['completed', 'compensated', 'parked', 'aborted']);
const ours = async () => (await role.store.list('order.>')).filter((l) => l.record.sagaId.startsWith(`order.${run}-`));
let records = await ours();
for (let last = -1; records.filter((r) => ENDED.has(r.record.status)).length < ids.length; ) {
  const ended = records.filter((r) => ENDED.has(r.record.status)).length;
  if (ended !== last) process.stdout.write(`  ${ended}/${ids.length} ended\n`);
  last = ended;
  await new Promise((r) => setTimeout(r, 500));
  records = await ours();
}
const seconds = (Date.now() - started) / 1000;

const summaries = records.map((r) => summarize(r.record.events));
const count = (status: string) => summaries.filter((s) => s.status === status).length;
const failedAt = new Map<string, number>();
for (const s of summaries.filter((s) => s.status === 'compensated')) failedAt.set(`${s.failedStep}: ${s.failure}`, (failedAt.get(`${s.failedStep}: ${s.failure}`) ?? 0) + 1);
const retried = summaries.filter((s) => records.find((r) => r.record.sagaId === s.sagaId)!.record.events.some((e) => e.type === 'RetryScheduled')).length;

process.stdout.write(
  [
    '',
    `${ids.length} sagas in ${seconds.toFixed(1)}s`,
    `  completed    ${count('completed')}${retried ? `  (${retried} needed a retry)` : ''}`,
    `  compensated  ${count('compensated')}${[...failedAt].map(([why, n]) => `\n    ${n} × ${why}`).join('')}`,
    `  parked       ${count('parked')}${count('parked') ? '  (see: tidemark saga list --status parked)' : ''}`,
    '',
  ].join('\n'),
);
// the compensated saga with the longest story shows the most
const example = records.filter((r) => r.record.status !== 'completed').sort((a, b) => b.record.events.length - a.record.events.length)[0] ?? records[0];
if (example) process.stdout.write(`\nfor example:\n${formatShow(example.record, Date.now())}\n`);

await services.stop();
await role.stop();
await nc.close();
await server?.stop();
if (storeDir) rmSync(storeDir, { recursive: true, force: true });
