import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import type { NatsConnection } from '@nats-io/transport-node';
import { mib, percentile } from './stats.ts';
import { rawEvent } from './workload.ts';

async function eventRows(client: ClickHouseClient, db: string): Promise<number> {
  const rows = await (await client.query({ query: `SELECT count() AS n FROM ${db}.events`, format: 'JSONEachRow' })).json<{ n: string }>();
  return Number(rows[0]?.n ?? 0);
}

export type MemorySample = { events: number; rssMiB: number; heapMiB: number; gatewayRssMiB?: number };

/** Resident memory of another process (the gateway), from /proc; undefined where there is none. */
export function processRssMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Math.round(Number(kb) / 1024);
  } catch {
    return undefined;
  }
}

/** Runs the load generator in its own process and resolves when it has published everything. */
function publishInProcess(natsUrl: string, from: number, count: number, now: number): Promise<void> {
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx/esm'), fileURLToPath(new URL('./publish-process.ts', import.meta.url)), natsUrl, String(from), String(count), String(now)], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const guard = () => child.kill('SIGKILL');
  process.once('exit', guard);
  return new Promise((resolve, reject) =>
    child.once('exit', (code) => {
      process.off('exit', guard);
      if (code === 0) resolve();
      else reject(new Error(`the load generator exited with ${code}`));
    }),
  );
}

/**
 * Publishes `count` raw events to `ingest.>` as fast as core publish goes, from a
 * process of its own, and waits until every one is acked by the processor, i.e.
 * stored in ClickHouse. Memory is sampled each time another `sampleEvery` events are
 * through.
 */
export async function drain(options: {
  natsUrl: string;
  /** events the processor has stored and acked so far */
  stored: () => number;
  clickhouse: ClickHouseClient;
  db: string;
  from: number;
  count: number;
  sampleEvery: number;
  gatewayPid?: number;
}): Promise<{ ms: number; memory: MemorySample[] }> {
  const { stored, from, count } = options;
  const storedBefore = stored();
  const now = Date.now();
  const started = performance.now();
  const memory: MemorySample[] = [];
  let nextSample = options.sampleEvery;
  const publishing = publishInProcess(options.natsUrl, from, count, now);
  for (;;) {
    const done = stored() - storedBefore;
    if (done >= nextSample) {
      const usage = process.memoryUsage();
      const gatewayRssMiB = processRssMiB(options.gatewayPid);
      memory.push({ events: done, rssMiB: mib(usage.rss), heapMiB: mib(usage.heapUsed), ...(gatewayRssMiB === undefined ? {} : { gatewayRssMiB }) });
      nextSample += options.sampleEvery;
    }
    if (done >= count) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await publishing;
  const ms = performance.now() - started;
  const rows = await eventRows(options.clickhouse, options.db);
  if (rows < from + count) throw new Error(`events table holds ${rows} rows, expected ${from + count}`);
  return { ms, memory };
}

export type LatencyResult = { samples: number; p50: number; p99: number; max: number };

const summarize = (values: number[]): LatencyResult => ({ samples: values.length, p50: percentile(values, 50), p99: percentile(values, 99), max: Math.max(...values) });

/**
 * A steady load of `rate` events/s for `seconds`, with probes: a realtime probe is a
 * sale of a store of its own (so its window row is unambiguous) timed from publish
 * to visible in realtime_windows; a late probe is a sale for yesterday timed from
 * publish to its new revision in report_revisions.
 */
export async function pacedLoad(options: { nc: NatsConnection; clickhouse: ClickHouseClient; db: string; from: number; rate: number; seconds: number; report: string }): Promise<{ sent: number; freshness: LatencyResult; late: LatencyResult }> {
  const { nc, clickhouse, db } = options;
  const tickMs = 10;
  const perTick = Math.max(1, Math.round((options.rate * tickMs) / 1000));
  const end = performance.now() + options.seconds * 1000;
  let i = options.from;
  let probe = 0;
  const realtimeProbes: Array<Promise<number>> = [];
  const lateProbes: Array<Promise<number>> = [];

  const waitVisible = async (query: string, params: Record<string, unknown>, sentAt: number): Promise<number> => {
    for (;;) {
      const rows = await (await clickhouse.query({ query, query_params: params, format: 'JSONEachRow' })).json();
      if (rows.length > 0) return performance.now() - sentAt;
      if (performance.now() - sentAt > 60_000) return Number.POSITIVE_INFINITY;
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  let nextProbeAt = performance.now() + 250;
  while (performance.now() < end) {
    const tickStart = performance.now();
    const now = Date.now();
    for (let k = 0; k < perTick; k++, i++) {
      const { subject, body } = rawEvent(i, now);
      nc.publish(subject, body);
    }
    if (tickStart >= nextProbeAt) {
      nextProbeAt += 500;
      probe++;
      const source = `probe-${probe}`;
      const sentAt = performance.now();
      nc.publish(`ingest.${source}.sale`, JSON.stringify({ id: `probe-${probe}`, occurredAt: now, data: { amount: '1.00' } }));
      realtimeProbes.push(waitVisible(`SELECT 1 FROM ${db}.realtime_windows WHERE group_key = {g:String} LIMIT 1`, { g: JSON.stringify([source]) }, sentAt));
      const lateSource = `late-${probe}`;
      nc.publish(`ingest.${lateSource}.sale`, JSON.stringify({ id: `late-${probe}`, occurredAt: now - 86_400_000, data: { amount: '2.00' } }));
      lateProbes.push(waitVisible(`SELECT 1 FROM ${db}.report_revisions WHERE report = {r:String} AND group_key = {g:String} LIMIT 1`, { r: options.report, g: JSON.stringify([lateSource]) }, sentAt));
    }
    await nc.flush();
    const spent = performance.now() - tickStart;
    if (spent < tickMs) await new Promise((r) => setTimeout(r, tickMs - spent));
  }
  return { sent: i - options.from, freshness: summarize(await Promise.all(realtimeProbes)), late: summarize(await Promise.all(lateProbes)) };
}
