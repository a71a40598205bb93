/**
 * The ceiling of any pipeline shaped like ours on this machine, measured, never asserted:
 * bare JetStream with two durable hops and nothing else.
 *
 *   npx tsx scripts/bench-two-hops.ts --events 500000
 *
 * The bench's raw messages are core-published into stream HOP1; a relay process (as
 * the gateway is) consumes them, publishes each to stream HOP2 with a message id and
 * waits for its PubAck (one inbox, as the gateway does), then acks; this process
 * consumes HOP2 and acks (as the processor does). No parsing, no validation, no
 * ClickHouse. Compare its events/s with `npm run bench`'s pipeline and bare figures.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AckPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { rawEvent } from '../src/bench/workload.ts';
import { createBatchPublisher } from '../src/nats/batch-publisher.ts';
import { runBatchConsumer } from '../src/nats/batch-consumer.ts';
import { startNatsServer } from '../src/nats/embedded-server.ts';

const opts = new Command('bench-two-hops')
  .addOption(new Option('--events <n>', 'messages').default(500_000).argParser(Number))
  .addOption(new Option('--per-message <n>', 'raw messages the relay packs into one HOP2 message (1: one each)').default(1).argParser(Number))
  .addOption(new Option('--relay <url>', 'run as the relay against this server (used by the bench itself)'))
  .parse()
  .opts<{ events: number; perMessage: number; relay?: string }>();
const logger = pino({ level: 'warn' });
const encoder = new TextEncoder();

if (opts.relay) {
  const nc = await connect({ servers: opts.relay, noAsyncTraces: true });
  const js = jetstream(nc);
  const publisher = createBatchPublisher(nc);
  let n = 0;
  await runBatchConsumer({
    js,
    stream: 'HOP1',
    durable: 'relay',
    batchSize: 5_000,
    concurrency: 3,
    logger,
    handler: async (msgs) => {
      const packs: JsMsg[][] = [];
      for (let i = 0; i < msgs.length; i += opts.perMessage) packs.push(msgs.slice(i, i + opts.perMessage));
      const outcomes = await publisher.publish(packs.map((pack) => ({ subject: `hop2.${pack[0]!.subject.slice(5)}`, data: pack.length === 1 ? pack[0]!.data : Buffer.concat(pack.map((m) => m.data)), msgId: `h-${pack[0]!.seq}`, headers: { 'Tidemark-Events': String(pack.length) } })));
      packs.forEach((pack, i) => pack.forEach((msg) => (outcomes[i]!.ok ? msg.ack() : msg.nak())));
      n += msgs.length;
    },
  });
  process.on('SIGTERM', () => {
    process.stderr.write(`relay: ${n} messages\n`);
    process.exit(0);
  });
} else {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-two-hops-'));
  const server = await startNatsServer({ storeDir: dir, port: 0 });
  const nc = await connect({ servers: server.url, noAsyncTraces: true });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  for (const [name, subject] of [['HOP1', 'hop1.>'], ['HOP2', 'hop2.>']] as const) await jsm.streams.add({ name, subjects: [subject], duplicate_window: 120_000_000_000 });
  await jsm.consumers.add('HOP1', { durable_name: 'relay', ack_policy: AckPolicy.Explicit, max_ack_pending: 20_000 });
  await jsm.consumers.add('HOP2', { durable_name: 'sink', ack_policy: AckPolicy.Explicit, max_ack_pending: 20_000 });
  const relay = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--relay', server.url, '--per-message', String(opts.perMessage)], { stdio: ['ignore', 'inherit', 'inherit'] });

  let acked = 0;
  let finished!: () => void;
  const done = new Promise<void>((r) => (finished = r));
  const sink = await runBatchConsumer({
    js,
    stream: 'HOP2',
    durable: 'sink',
    batchSize: 5_000,
    concurrency: 2,
    logger,
    handler: async (msgs) => {
      for (const msg of msgs) msg.ack();
      acked += msgs.reduce((n, msg) => n + Number(msg.headers?.get('Tidemark-Events') ?? 1), 0);
      if (acked >= opts.events) finished();
    },
  });
  const now = Date.now();
  const started = performance.now();
  for (let i = 0; i < opts.events; i++) {
    const { subject, body } = rawEvent(i, now);
    nc.publish(`hop1.${subject.slice('ingest.'.length)}`, encoder.encode(body));
    if (i % 5_000 === 0) await nc.flush();
  }
  await nc.flush();
  await done;
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`two durable hops, ${opts.events} messages: ${Math.round(opts.events / seconds)} msg/s (${seconds.toFixed(1)} s)\n`);
  await sink.stop();
  relay.kill('SIGTERM');
  await new Promise((r) => relay.once('exit', r));
  await nc.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
