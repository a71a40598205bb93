import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { alertLatency } from '../../bench/alert-latency.ts';
import { bigDayProbe } from '../../bench/big-day.ts';
import { probeDuring } from '../../bench/during-scan.ts';
import { bareJetStream } from '../../bench/baseline.ts';
import { drain, pacedLoad, type MemorySample } from '../../bench/pipeline.ts';
import { rate } from '../../bench/stats.ts';
import { openClickHouse } from '../../clickhouse/client.ts';
import { migrate, migrationOptions } from '../../clickhouse/migrations.ts';
import { parseConfig, type Config } from '../../core/config.ts';
import { createLogger, type Logger } from '../../core/logger.ts';
import { startNatsGateway } from '../../ingest/nats-gateway.ts';
import { freePort, startNatsServer } from '../../nats/embedded-server.ts';
import { startHttpGateway } from '../../ingest/http/server.ts';
import { createRegistry } from '../../core/metrics.ts';
import { cpuPerEvent, sampleCpu } from '../../bench/cpu.ts';
import { CONSUMERS, ensureTopology } from '../../nats/topology.ts';
import { replayReport } from '../../processors/daily/replay.ts';
import { startProcessor } from '../../processors/processor.ts';
import { systemClock } from '../../core/time.ts';
import { configFor } from '../runtime.ts';

type BenchOptions = { events: string; httpEvents: string; perRequest: string; rate: string; seconds: string; memoryEvents: string; alertTrials: string; bigDayEvents: string; bigDayTrials: string; gatewayProcess: boolean; gateways: string };

/** CPU µs per event by process, as one line: what each run cost whatever the machine's load. */
const cpuLine = (cpu: Record<string, number>): string => Object.entries(cpu).map(([name, us]) => `${name} ${us} µs`).join(', ');

/**
 * The gateway as its own process, as deployed: on two cores it then works in parallel
 * with the processor instead of taking turns with it on one event loop. With PROF_DIR
 * in the environment it writes a V8 CPU profile there.
 */
async function spawnGateway(natsUrl: string, configFile: string | undefined, httpPort: number): Promise<{ pid?: number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [...(process.env.PROF_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.PROF_DIR] : []), fileURLToPath(new URL('../../../bin/tidemark.mjs', import.meta.url)), 'gateway', ...(configFile ? ['--config', configFile] : [])], {
    env: { ...process.env, NATS_URL: natsUrl, TIDEMARK_HTTP_PORT: String(httpPort), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // a bench that fails half-way must not leave its gateway running
  const orphanGuard = () => child.kill('SIGKILL');
  process.once('exit', orphanGuard);
  void exited.then(() => process.off('exit', orphanGuard));
  return {
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The NATS and HTTP gateways in the bench process (`--no-gateway-process`). */
async function inProcessGateways(config: Config, js: JetStreamClient, nc: NatsConnection, logger: Logger, httpPort: number): Promise<{ stop: () => Promise<void> }> {
  const nats = await startNatsGateway({ js, nc, config, logger });
  const http = await startHttpGateway({ config: { ...config, http: { ...config.http, port: httpPort } }, js, nc, logger, registry: createRegistry() });
  return {
    stop: async () => {
      await http.close();
      await nats.stop();
    },
  };
}

/** Until the gateway and processor consumers have nothing pending or unacked, twice in a row. */
async function untilIdle(jsm: JetStreamManager): Promise<void> {
  let quiet = 0;
  while (quiet < 2) {
    const infos = await Promise.all([CONSUMERS.gateway, CONSUMERS.processor].map((c) => jsm.consumers.info(c.stream, c.durable)));
    quiet = infos.every((i) => i.num_pending === 0 && i.num_ack_pending === 0) ? quiet + 1 : 0;
    await new Promise((r) => setTimeout(r, 200));
  }
}

const line = (label: string, value: string) => process.stdout.write(`${label.padEnd(44)} ${value}\n`);

export function register(program: Command): void {
  program
    .command('bench')
    .description('measure end-to-end events/s against bare JetStream in the same run, realtime freshness, late-revision latency, memory and replay events/s')
    .option('--events <n>', 'events for the throughput runs', '1000000')
    .option('--http-events <n>', 'events for each HTTP ingest run, one client and four (0: skip)', '200000')
    .option('--per-request <n>', 'NDJSON events in one HTTP request', '10000')
    .option('--rate <n>', 'events/s of the steady load for the latency probes', '50000')
    .option('--seconds <n>', 'duration of the steady load', '20')
    .option('--memory-events <n>', 'drain this many events in all and sample memory every million (0: skip)', '5000000')
    .option('--alert-trials <n>', 'late bursts, each from its own source, timed from the first late event to its DelayedEvent on alerts.> (0: skip)', '20')
    .option('--big-day-events <n>', 'events filled into one business day for the "late event → revision on a big day" probe (0: skip)', '20000000')
    .option('--big-day-trials <n>', 'late events published for the big day, one after another', '20')
    .option('--no-gateway-process', 'run the gateway in the bench process instead of its own')
    .option('--gateways <n>', 'gateway processes: one reads INGEST, the others stand by to take over (default: one per two cores)', String(Math.max(1, Math.floor(availableParallelism() / 2))))
    .action(async (opts: BenchOptions, command: Command) => {
      const base = await configFor(command);
      const events = Number(opts.events);
      const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-'));
      const logger = createLogger('bench');
      logger.level = 'warn';
      const server = await startNatsServer({ storeDir: join(dir, 'nats'), port: 0 });
      const config = parseConfig({ reports: base.reports, slas: [{ name: 'bench-late', source: 'bench-late-*', type: 'bench_late', maxDelay: '1h' }], dataDir: dir, nats: { url: server.url, streams: { ingest: { maxAge: '1d' }, events: { maxAge: '1d' } } } });
      const clickhouse = openClickHouse(config);
      const nc = await connect({ servers: server.url });
      try {
        const js = jetstream(nc);
        const jsm = await jetstreamManager(nc);
        await ensureTopology(jsm, config);
        const db = config.clickhouse.database;
        await migrate(clickhouse, db, migrationOptions(config));
        const shape = opts.gatewayProcess ? `${opts.gateways} gateway process(es)` : 'the gateway in this process';
        process.stdout.write(`Tidemark bench: ${events} events, nats-server ${server.url}, chDB in ${dir}\n`);
        process.stdout.write(`shape: load generator in its own process → ${shape} → one processor in this process\n\n`);

        const bare = await bareJetStream(nc, js, events);
        line('bare JetStream publish+consume+ack', `${bare.eventsPerSecond} msg/s (publish ${Math.round(bare.publishMs)} ms, consume ${Math.round(bare.consumeMs)} ms)`);

        const configFile = command.optsWithGlobals<{ config?: string }>().config;
        const httpPort = await freePort();
        const gateways: Array<{ pid?: number; stop: () => Promise<void> }> = opts.gatewayProcess
          ? await Promise.all(Array.from({ length: Math.max(1, Number(opts.gateways)) }, (_, i) => spawnGateway(server.url, configFile, i === 0 ? httpPort : 0)))
          : [await inProcessGateways(config, js, nc, logger, httpPort)];
        const gateway = gateways[0]!;
        const processor = await startProcessor({ config, js, clickhouse, logger });
        const pids = { gateway: gateway.pid ?? process.pid, processor: process.pid, 'nats-server': server.pid };
        try {
          const cpuBefore = sampleCpu(pids);
          const first = await drain({ natsUrl: server.url, stored: () => processor.stats.events, clickhouse, db, from: 0, count: events, sampleEvery: events });
          const natsCpu = cpuPerEvent(cpuBefore, sampleCpu(pids), events);
          const eps = rate(events, first.ms);
          line('pipeline ingest.> → ClickHouse rows', `${eps} events/s (${Math.round(first.ms)} ms; ${first.copies} events handled twice)`);
          line('ratio to bare JetStream', `${(eps / bare.eventsPerSecond).toFixed(2)}×`);
          line('  CPU per event', cpuLine(natsCpu));

          let from = events;
          const httpEvents = Number(opts.httpEvents);
          const http: Array<{ clients: number; acceptedPerSecond: number; eventsPerSecond: number; ratio: number; cpu: Record<string, number> }> = [];
          // The HTTP runs are compared with NATS runs of their own size just before and just after
          // them (A-B-A): each run finds a bigger day for the revisor to scan than the run before,
          // so a comparison with the first, bigger run would charge that growth to HTTP.
          const natsRun = async (when: string) => {
            const before = sampleCpu(pids);
            const run = await drain({ natsUrl: server.url, stored: () => processor.stats.events, clickhouse, db, from, count: httpEvents, sampleEvery: httpEvents });
            from += httpEvents;
            const result = { eventsPerSecond: rate(httpEvents, run.ms), cpu: cpuPerEvent(before, sampleCpu(pids), httpEvents) };
            line(`pipeline ingest.> → rows, ${httpEvents} events ${when}`, `${result.eventsPerSecond} events/s (${run.copies} events handled twice)`);
            line('  CPU per event', cpuLine(result.cpu));
            return result;
          };
          const natsBeside = httpEvents > 0 ? [await natsRun('before the HTTP runs')] : [];
          const copies: number[] = [];
          for (const clients of httpEvents > 0 ? [1, 4] : []) {
            const before = sampleCpu(pids);
            const run = await drain({ natsUrl: server.url, stored: () => processor.stats.events, clickhouse, db, from, count: httpEvents, sampleEvery: httpEvents, via: { http: `http://127.0.0.1:${httpPort}`, clients, perRequest: Number(opts.perRequest) } });
            from += httpEvents;
            // the ratio waits for the NATS run after
            http.push({ clients, acceptedPerSecond: rate(httpEvents, run.acceptedMs), eventsPerSecond: rate(httpEvents, run.ms), ratio: Number.NaN, cpu: cpuPerEvent(before, sampleCpu(pids), httpEvents) });
            copies.push(run.copies);
          }
          if (httpEvents > 0) natsBeside.push(await natsRun('after the HTTP runs'));
          const natsPath = natsBeside.reduce((sum, run) => sum + run.eventsPerSecond, 0) / Math.max(1, natsBeside.length);
          http.forEach((result, i) => {
            result.ratio = result.eventsPerSecond / natsPath;
            line(`HTTP POST /v1/events, ${result.clients} client(s) → rows`, `${result.eventsPerSecond} events/s, ${result.ratio.toFixed(2)}× the NATS path (mean of the runs before and after; 202s at ${result.acceptedPerSecond} events/s; ${copies[i]} events handled twice)`);
            line('  CPU per event', cpuLine(result.cpu));
          });

          const load = await pacedLoad({ nc, natsUrl: server.url, clickhouse, db, from, rate: Number(opts.rate), seconds: Number(opts.seconds), report: config.reports[0]?.name ?? 'revenue' });
          line(`realtime freshness at ${opts.rate} events/s`, `p50 ${Math.round(load.freshness.p50)} ms, p99 ${Math.round(load.freshness.p99)} ms, max ${Math.round(load.freshness.max)} ms (${load.freshness.samples} probes; ${load.ratePublished} events/s published)`);
          line('late event → new revision', `p50 ${Math.round(load.late.p50)} ms, p99 ${Math.round(load.late.p99)} ms, max ${Math.round(load.late.max)} ms (coalesce ${config.reports[0]?.coalesce ?? 0} ms)`);
          line('late event after close → ReportAmended', `p50 ${Math.round(load.amended.p50)} ms, p99 ${Math.round(load.amended.p99)} ms, max ${Math.round(load.amended.max)} ms on alerts.> (${load.amended.samples} probes, a day closed 30 d ago; coalesce ${config.reports[0]?.coalesce ?? 0} ms)`);
          from += load.sent;
          // a load any machine sustains, unlike a fixed 50,000 events/s: half of what this run measured
          const halfRate = Math.max(1, Math.round(eps / 2));
          await untilIdle(jsm);
          const half = await pacedLoad({ nc, natsUrl: server.url, clickhouse, db, from, rate: halfRate, seconds: Number(opts.seconds), report: config.reports[0]?.name ?? 'revenue', probePrefix: 'half-' });
          from += half.sent;
          line(`realtime freshness at half throughput (${halfRate} events/s)`, `p50 ${Math.round(half.freshness.p50)} ms, p99 ${Math.round(half.freshness.p99)} ms, max ${Math.round(half.freshness.max)} ms (${half.freshness.samples} probes; ${half.ratePublished} events/s published)`);
          line('  late event → new revision at half throughput', `p50 ${Math.round(half.late.p50)} ms, p99 ${Math.round(half.late.p99)} ms, max ${Math.round(half.late.max)} ms`);
          const bigDayEvents = Number(opts.bigDayEvents);
          const bigDay = bigDayEvents > 0 && config.reports[0] ? await bigDayProbe({ nc, clickhouse, db, report: config.reports[0], events: bigDayEvents, groups: 40, trials: Number(opts.bigDayTrials) }) : undefined;
          if (bigDay) {
            line(`  big day ${bigDay.day}: ${bigDay.dayEvents} events, ${bigDay.groups} groups`, `filled in ${(bigDay.fillMs / 1000).toFixed(1)} s; first revision (whole day read once) ${(bigDay.firstRevisionMs / 1000).toFixed(1)} s`);
            const d = bigDay.duringFirst;
            line('  while the first revision read the big day', `realtime p50 ${Math.round(d.realtime.p50)} ms, max ${Math.round(d.realtime.max)} ms; small-day revision p50 ${Math.round(d.revision.p50)} ms, max ${Math.round(d.revision.max)} ms (${d.revision.samples} probes each)`);
            line('late event → revision on a big day', `p50 ${Math.round(bigDay.late.p50)} ms, p99 ${Math.round(bigDay.late.p99)} ms, max ${Math.round(bigDay.late.max)} ms (${bigDay.late.samples} late events, day of ${bigDay.dayEvents} events)`);
          }

          const memoryEvents = Number(opts.memoryEvents);
          let memory: MemorySample[] = [];
          if (memoryEvents > 0) {
            // the steady load may have left a backlog: counting it as this run's would end the run early
            await untilIdle(jsm);
            const run = await drain({ natsUrl: server.url, stored: () => processor.stats.events, clickhouse, db, from, count: memoryEvents, sampleEvery: 1_000_000, ...(gateway.pid === undefined ? {} : { gatewayPid: gateway.pid }), ...(server.pid === undefined ? {} : { natsServerPid: server.pid }) });
            memory = run.memory;
            line(`pipeline, ${memoryEvents} more events`, `${rate(memoryEvents, run.ms)} events/s (${run.copies} events handled twice)`);
            for (const sample of memory) {
              const gatewayRss = sample.gatewayRssMiB === undefined ? '' : `; gateway process rss ${sample.gatewayRssMiB} MiB`;
              const natsRss = sample.natsServerRssMiB === undefined ? '' : `; nats-server rss ${sample.natsServerRssMiB} MiB`;
              line(`  memory after ${sample.events} events`, `processor process rss ${sample.rssMiB} MiB, heap ${sample.heapMiB} MiB${gatewayRss}${natsRss}`);
            }
            // flat means the last million costs no more resident memory than the first: printed side by side
            const [firstSample, lastSample] = [memory[0], memory.at(-1)];
            if (firstSample && lastSample && lastSample !== firstSample) {
              const change = (label: string, a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? [] : [`${label} ${a} → ${b} MiB (${b - a >= 0 ? '+' : ''}${b - a})`]);
              line(`  rss at ${firstSample.events} → ${lastSample.events} events`, [
                ...change('processor', firstSample.rssMiB, lastSample.rssMiB),
                ...change('gateway', firstSample.gatewayRssMiB, lastSample.gatewayRssMiB),
                ...change('nats-server', firstSample.natsServerRssMiB, lastSample.natsServerRssMiB),
              ].join(', '));
            }
          }
          const report = config.reports[0];
          const replaying = report ? await probeDuring({ nc, clickhouse, db, report: report.name, tag: 'replay', type: report.types[0]! }, replayReport({ store: processor.store, clickhouse, db, js, clock: systemClock, logger }, report, {})) : undefined;
          const replay = replaying?.result;
          if (replaying && replay) {
            line(`replay of ${report!.name}: ${replay.events} events, ${replay.days} day(s)`, `${rate(replay.events, replay.seconds * 1000)} events/s (${replay.seconds.toFixed(1)} s)`);
            line('  while the replay ran', `realtime p50 ${Math.round(replaying.realtime.p50)} ms, max ${Math.round(replaying.realtime.max)} ms; small-day revision p50 ${Math.round(replaying.revision.p50)} ms, max ${Math.round(replaying.revision.max)} ms (${replaying.revision.samples} probes each)`);
          }
          const trials = Number(opts.alertTrials);
          const alerts = trials > 0 ? await alertLatency({ nc, js, jsm, clickhouse, config, logger, trials }) : undefined;
          if (alerts) line('first late event → DelayedEvent on alerts.>', `p50 ${Math.round(alerts.p50)} ms, p99 ${Math.round(alerts.p99)} ms, max ${Math.round(alerts.max)} ms (${alerts.trials} groups; groupWait ${alerts.groupWaitMs} ms, target p99 < groupWait + 5 s)`);
          process.stdout.write(`\n${JSON.stringify({ bare, pipelineEventsPerSecond: eps, ratio: eps / bare.eventsPerSecond, cpuPerEventMicros: natsCpu, natsBesideHttp: natsBeside, http, freshness: load.freshness, late: load.late, amended: load.amended, half: { rate: halfRate, freshness: half.freshness, late: half.late }, bigDay, memory, replay, duringReplay: replaying && { realtime: replaying.realtime, revision: replaying.revision }, alerts })}\n`);
        } finally {
          await processor.stop();
          await Promise.all(gateways.map((g) => g.stop()));
        }
      } finally {
        await nc.close();
        await clickhouse.close();
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
}
