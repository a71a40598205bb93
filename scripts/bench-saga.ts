/**
 * Saga throughput and compensation latency, measured, never asserted.
 *
 *   npx tsx scripts/bench-saga.ts --sagas 10000 --instances 2 [--cpus-per-instance 0.4]
 *
 * With PROF_DIR=<dir> in the environment each orchestrator writes a V8 CPU profile there.
 *
 * Starts nats-server with a throw-away store (or uses NATS_URL), runs `tidemark saga
 * run` in `--instances` child processes on the example order saga, answers its
 * commands from simulated services in this process (no latency), publishes the
 * triggers, and reports:
 * - sagas/s from the first trigger to the last saga ending (with `--rate 0`, the
 *   default, every trigger is published at once: the saturated throughput);
 * - compensation start latency: from the failure reply being stored to the first
 *   compensation command being stored, both JetStream timestamps from SAGAS. Under a
 *   burst this is mostly queueing behind the backlog; `--rate <sagas/s>` paces the
 *   triggers so it shows the path itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { parseConfig } from '../src/core/config.ts';
import { startNatsServer, type EmbeddedNats } from '../src/nats/embedded-server.ts';
import { ensureTopology } from '../src/nats/topology.ts';
import { parseInputSubject, SAGA_BUCKET, SAGA_STREAM, triggerSubject } from '../src/saga/subjects.ts';
import { ensureSagaTopology } from '../src/saga/topology.ts';
import { startOrderServices } from '../examples/order-saga/services.ts';

const opts = new Command('bench-saga')
  .addOption(new Option('--sagas <n>', 'sagas to run').default(3_000).argParser(Number))
  .addOption(new Option('--instances <n>', 'orchestrator processes').default(1).argParser(Number))
  .addOption(new Option('--failure-rate <p>', 'chance each step fails (the saga compensates)').default(0.05).argParser(Number))
  .addOption(new Option('--concurrency <n>', 'sagas.concurrency of each orchestrator').default(64).argParser(Number))
  .addOption(new Option('--rate <n>', 'triggers per second; 0 publishes them all at once').default(0).argParser(Number))
  .addOption(new Option('--cpus-per-instance <cores>', 'CPU budget of each orchestrator (a cgroup quota, like a pod CPU limit); 0: unlimited').default(0).argParser(Number))
  .parse()
  .opts<{ sagas: number; instances: number; failureRate: number; concurrency: number; rate: number; cpusPerInstance: number }>();

const FAILURES = new Set(['OrderRejected', 'OutOfStock', 'PaymentDeclined', 'ShippingRejected']);
const CHILD = `
const { Command } = await import('commander');
const { register } = await import('./src/cli/commands/saga.ts');
const program = new Command('tidemark').option('-c, --config <file>');
register(program);
await program.parseAsync(process.argv.slice(1), { from: 'user' });
`;

const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-saga-'));
let server: EmbeddedNats | undefined;
if (!process.env.NATS_URL) server = await startNatsServer({ storeDir: join(dir, 'nats'), port: 0 });
const url = process.env.NATS_URL ?? server!.url;
const settings = { sagas: { concurrency: opts.concurrency } };
const config = parseConfig(settings, { NATS_URL: url }, 'bench');
writeFileSync(join(dir, 'tidemark.yaml'), JSON.stringify(settings));

const nc = await connect({ servers: url });
const js = jetstream(nc);
const jsm = await jetstreamManager(nc);
await ensureTopology(jsm, config);
await ensureSagaTopology(js, jsm, config);
const logger = pino({ level: 'warn' });
const services = await startOrderServices({ js, jsm, logger, behaviour: { failureRate: opts.failureRate, transientRate: 0, silentRate: 0, undoFailureRate: 0, latencyMs: 0 } });

/**
 * Puts a process under a CPU quota of its own (cgroup v2 `cpu.max`, else v1 CFS quota).
 * On a box this small one orchestrator, nats-server and the services already fill
 * both cores, so scaling shows only when each instance has a fixed budget, as it
 * would on its own machine or pod. Returns the cgroup to remove afterwards.
 */
function limitCpu(pid: number, cores: number, index: number): string {
  const quota = Math.round(cores * 100_000);
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
  const group = v2 ? `/sys/fs/cgroup/tidemark-bench-${process.pid}-${index}` : `/sys/fs/cgroup/cpu/tidemark-bench-${process.pid}-${index}`;
  try {
    mkdirSync(group);
    if (v2) writeFileSync(join(group, 'cpu.max'), `${quota} 100000`);
    else writeFileSync(join(group, 'cpu.cfs_quota_us'), String(quota));
    writeFileSync(join(group, 'cgroup.procs'), String(pid));
  } catch (err) {
    throw new Error(`--cpus-per-instance needs a writable cgroup (${group}): ${(err as Error).message}`);
  }
  return group;
}
const cgroups: string[] = [];

function startInstance(index: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...(process.env.PROF_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.PROF_DIR] : []), '--import', 'tsx', '--input-type=module', '-e', CHILD, '--', 'saga', 'run', '--no-clickhouse', '--definitions', 'examples/order-saga/definition.ts', '--config', join(dir, 'tidemark.yaml')], {
    env: { ...process.env, NATS_URL: url, TIDEMARK_DATA_DIR: dir, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (opts.cpusPerInstance > 0) cgroups.push(limitCpu(child.pid!, opts.cpusPerInstance, index));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`orchestrator exited with ${code}`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('saga orchestrator started')) resolve(child);
    });
  });
}
const children = await Promise.all(Array.from({ length: opts.instances }, (_, i) => startInstance(i)));

// the status sits near the start of every record: a cheap look instead of parsing whole logs
const ENDED = /"status":"(completed|compensated|parked|aborted)"/;
const decoder = new TextDecoder();
const ended = new Set<string>();
let allEnded!: () => void;
const done = new Promise<void>((r) => (allEnded = r));
const kv = await new Kvm(js).open(SAGA_BUCKET);
const watcher = await kv.watch({ key: 'order.>', include: 'updates' });
void (async () => {
  for await (const entry of watcher) {
    if (entry.operation === 'PUT' && ENDED.test(decoder.decode(entry.value.subarray(0, 160)))) ended.add(entry.key);
    if (ended.size === opts.sagas) allEnded();
  }
})();

process.stdout.write(`running ${opts.sagas} sagas on ${opts.instances} orchestrator process(es)${opts.cpusPerInstance ? ` of ${opts.cpusPerInstance} CPU each` : ''}, failure rate ${opts.failureRate} per step, ${opts.rate ? `${opts.rate} triggers/s` : 'all triggers at once'}\n`);
/** User + system CPU seconds of a process so far (Linux /proc; undefined elsewhere). */
function cpuSeconds(pid: number | undefined): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}
const cpuAtStart = children.map((c) => cpuSeconds(c.pid) ?? 0);
const startedAt = performance.now();
const inFlight = new Set<Promise<unknown>>();
for (let i = 0; i < opts.sagas; i++) {
  if (opts.rate) {
    const wait = startedAt + (i * 1000) / opts.rate - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const p = js.publish(triggerSubject('order'), JSON.stringify({ id: `b-${i}`, data: { orderId: `b-${i}`, address: 'x', items: [{ sku: 'tea', price: '129.90', qty: 1 }] } }), { msgID: `bench:${i}` });
  inFlight.add(p);
  void p.finally(() => inFlight.delete(p));
  if (inFlight.size >= 256) await Promise.race(inFlight);
}
await Promise.all(inFlight);
await done;
const seconds = (performance.now() - startedAt) / 1000;
watcher.stop();

/** Reads SAGAS once, in order: the failure reply and the first undo command of each saga. */
async function compensationLatencies(): Promise<number[]> {
  const failedAt = new Map<string, bigint>();
  const firstUndoAt = new Map<string, bigint>();
  const total = (await jsm.streams.info(SAGA_STREAM)).state.messages;
  const consumer = await js.consumers.get(SAGA_STREAM);
  let seen = 0;
  while (seen < total) {
    const batch = await consumer.fetch({ max_messages: 5_000, expires: 2_000 });
    let got = 0;
    for await (const msg of batch as AsyncIterable<JsMsg>) {
      got++;
      const body = msg.json<{ sagaId: string; kind: string; type?: string }>();
      if (parseInputSubject(msg.subject)?.kind === 'reply' && body.kind === 'do' && FAILURES.has(body.type ?? '')) failedAt.set(body.sagaId, msg.timestampNanos);
      else if (msg.subject.startsWith('saga.cmd.') && body.kind === 'undo' && !firstUndoAt.has(body.sagaId)) firstUndoAt.set(body.sagaId, msg.timestampNanos);
    }
    seen += got;
    if (!got) break;
  }
  return [...firstUndoAt].flatMap(([sagaId, at]) => {
    const failed = failedAt.get(sagaId);
    return failed === undefined ? [] : [Number(at - failed) / 1e6];
  });
}

const cpu = children.map((c, i) => {
  const now = cpuSeconds(c.pid);
  return now === undefined ? undefined : now - cpuAtStart[i]!;
});
const ownCpu = process.cpuUsage();
const serverCpu = cpuSeconds(server?.pid);

const latencies = (await compensationLatencies()).sort((a, b) => a - b);
const pct = (p: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!.toFixed(1) : '-');
process.stdout.write(
  [
    `${opts.sagas} sagas in ${seconds.toFixed(2)}s: ${(opts.sagas / seconds).toFixed(0)} sagas/s (${opts.instances} orchestrator process(es))`,
    `compensation start after the failure event, ${latencies.length} sagas: p50 ${pct(50)} ms, p99 ${pct(99)} ms, max ${latencies.at(-1)?.toFixed(1) ?? '-'} ms (target p99 < 100 ms)`,
    ...(cpu.every((c) => c !== undefined)
      ? [`orchestrator CPU during the run: ${cpu.map((c) => `${c!.toFixed(2)}s`).join(' + ')} = ${((cpu.reduce((a, b) => a! + b!, 0)! * 1000) / opts.sagas).toFixed(2)} ms per saga; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`]
      : []),
    `CPU of the rest: this process (simulated services, triggers) ${((ownCpu.user + ownCpu.system) / 1e6).toFixed(2)}s${serverCpu === undefined ? '' : `, nats-server ${serverCpu.toFixed(2)}s`}`,
    '',
  ].join('\n'),
);

for (const child of children) child.kill('SIGTERM');
await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
for (const group of cgroups) rmdirSync(group);
await services.stop();
await nc.close();
await server?.stop();
rmSync(dir, { recursive: true, force: true });
