/**
 * The NATS gateway alone, measured, never asserted: raw events core-published into
 * INGEST ahead, then one gateway reads them into EVENTS (validate, stamp, pack,
 * publish with PubAcks, ack INGEST). Prints events/s and the CPU each event cost the
 * gateway (this process) and nats-server.
 *
 *   npx tsx scripts/bench-gateway.ts --events 500000
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { rawEvent } from '../src/bench/workload.ts';
import { parseConfig } from '../src/core/config.ts';
import { startNatsGateway } from '../src/ingest/nats-gateway.ts';
import { startNatsServer } from '../src/nats/embedded-server.ts';
import { CONSUMERS, ensureTopology } from '../src/nats/topology.ts';

const opts = new Command('bench-gateway')
  .addOption(new Option('--events <n>', 'raw events').default(500_000).argParser(Number))
  .parse()
  .opts<{ events: number }>();

/** CPU seconds a process has used, from /proc. */
const cpuSeconds = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-gateway-'));
const server = await startNatsServer({ storeDir: dir, port: 0 });
const nc = await connect({ servers: server.url, noAsyncTraces: true });
try {
  const config = parseConfig({ dataDir: dir, nats: { url: server.url } });
  const jsm = await jetstreamManager(nc);
  await ensureTopology(jsm, config);
  const now = Date.now();
  for (let i = 0; i < opts.events; i++) {
    const { subject, body } = rawEvent(i, now);
    nc.publish(subject, body);
    if (i % 5_000 === 0) await nc.flush();
  }
  await nc.flush();
  while ((await jsm.streams.info('INGEST')).state.messages < opts.events) await new Promise((r) => setTimeout(r, 20));

  const serverBefore = cpuSeconds(server.pid!);
  const ownBefore = process.cpuUsage();
  const started = performance.now();
  const gateway = await startNatsGateway({ js: jetstream(nc), nc, config, logger: pino({ level: 'warn' }) });
  const { stream, durable } = CONSUMERS.gateway;
  while ((await jsm.consumers.info(stream, durable)).ack_floor.stream_seq < opts.events) await new Promise((r) => setTimeout(r, 20));
  const seconds = (performance.now() - started) / 1000;
  const own = process.cpuUsage(ownBefore);
  const serverCpu = cpuSeconds(server.pid!) - serverBefore;
  await gateway.stop();
  const perEvent = (cpu: number) => ((cpu / opts.events) * 1e6).toFixed(1);
  process.stdout.write(`gateway alone, ${opts.events} raw events: ${Math.round(opts.events / seconds)} events/s; CPU per event: gateway ${perEvent((own.user + own.system) / 1e6)} µs, nats-server ${perEvent(serverCpu)} µs\n`);
} finally {
  await nc.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
