import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import type { NatsConnection } from '@nats-io/transport-node';
import { mib, percentile } from './stats.ts';

/** Distinct events, by identity (source, id), stored (a copy not yet merged away is still a row of its own). */
async function storedEvents(client: ClickHouseClient, db: string): Promise<number> {
  const rows = await (await client.query({ query: `SELECT uniqExact(source, id) AS n FROM ${db}.events`, format: 'JSONEachRow' })).json<{ n: string }>();
  return Number(rows[0]?.n ?? 0);
}

export type MemorySample = { events: number; rssMiB: number; heapMiB: number; gatewayRssMiB?: number; natsServerRssMiB?: number };

/** Resident memory of another process (the gateway, nats-server), from /proc; undefined where there is none. */
export function processRssMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Math.round(Number(kb) / 1024);
  } catch {
    return undefined;
  }
}

/** How a drain's events go in: core publishes to `ingest.>`, or NDJSON requests to the HTTP gateway. */
export type LoadVia = { http: string; clients: number; perRequest: number };

/** Runs the load generator in its own process and resolves when it has published everything (at `rate` events/s when given). */
function publishInProcess(natsUrl: string, from: number, count: number, now: number, rate?: number, via?: LoadVia): Promise<void> {
  const args = via
    ? ['./http-post-process.ts', via.http, String(from), String(count), String(now), String(via.clients), String(via.perRequest)]
    : ['./publish-process.ts', natsUrl, String(from), String(count), String(now), ...(rate === undefined ? [] : [String(rate)])];
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx/esm'), fileURLToPath(new URL(args[0]!, import.meta.url)), ...args.slice(1)], {
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
 * Publishes `count` raw events to `ingest.>` as fast as core publish goes (or posts
 * them to the HTTP gateway, `via`), from a process of its own, and waits until every one is acked by the processor, i.e.
 * stored in ClickHouse, and `events` holds each of them. Memory is sampled each time
 * another `sampleEvery` events are through. `copies`: events the processor handled
 * more than once (redelivered, or past a gateway twice).
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
  natsServerPid?: number;
  via?: LoadVia;
}): Promise<{ ms: number; acceptedMs: number; memory: MemorySample[]; copies: number }> {
  const { stored, from, count } = options;
  const storedBefore = stored();
  const distinctBefore = await storedEvents(options.clickhouse, options.db);
  const now = Date.now();
  const started = performance.now();
  const memory: MemorySample[] = [];
  let nextSample = options.sampleEvery;
  let acceptedMs = Number.NaN;
  let failure: unknown;
  const publishing = publishInProcess(options.natsUrl, from, count, now, undefined, options.via).then(
    () => void (acceptedMs = performance.now() - started),
    (err: unknown) => void (failure = err),
  );
  for (;;) {
    const done = stored() - storedBefore;
    if (done >= nextSample) {
      const usage = process.memoryUsage();
      const gatewayRssMiB = processRssMiB(options.gatewayPid);
      const natsServerRssMiB = processRssMiB(options.natsServerPid);
      memory.push({
        events: done,
        rssMiB: mib(usage.rss),
        heapMiB: mib(usage.heapUsed),
        ...(gatewayRssMiB === undefined ? {} : { gatewayRssMiB }),
        ...(natsServerRssMiB === undefined ? {} : { natsServerRssMiB }),
      });
      nextSample += options.sampleEvery;
    }
    if (done >= count) break;
    // a load generator that failed will never bring the rest
    if (failure) throw failure;
    await new Promise((r) => setTimeout(r, 100));
  }
  await publishing;
  if (failure) throw failure;
  // copies count in the processor's tally, so it can reach `count` before every event is in
  let distinct = await storedEvents(options.clickhouse, options.db);
  for (const deadline = performance.now() + 120_000; distinct < from + count && performance.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 500));
    distinct = await storedEvents(options.clickhouse, options.db);
  }
  const ms = performance.now() - started;
  if (distinct < from + count) throw new Error(`events table holds ${distinct} events, expected ${from + count}`);
  return { ms, acceptedMs, memory, copies: stored() - storedBefore - (distinct - distinctBefore) };
}

export type LatencyResult = { samples: number; p50: number; p99: number; max: number };

/**
 * Ten probes a second: enough samples for p99 to be a percentile rather than the
 * maximum of a few dozen (both are printed), and 20 events/s of extra load.
 */
const PROBE_EVERY_MS = 100;
/** Two amendment probes a second: each is a revision of a small old day, and an alert. */
const AMEND_EVERY = 5;
/** Far past any close a report is likely to have (the shipped one closes 3 days after the day). */
const CLOSED_DAY_AGO_MS = 30 * 86_400_000;

const summarize = (values: number[]): LatencyResult => ({ samples: values.length, p50: percentile(values, 50), p99: percentile(values, 99), max: Math.max(...values) });

/**
 * A steady load of `rate` events/s for `seconds` from a load generator process, with
 * probes published from here: a realtime probe is a sale of a store of its own (so its
 * window row is unambiguous) timed from publish to visible in realtime_windows; a late
 * probe is a sale for yesterday timed from publish to its new revision in
 * report_revisions; every AMEND_EVERY-th probe also sends a sale of a store of its own
 * for a day long closed, timed from publish to its ReportAmended on `alerts.>`.
 */
export async function pacedLoad(options: { nc: NatsConnection; natsUrl: string; clickhouse: ClickHouseClient; db: string; from: number; rate: number; seconds: number; report: string; probePrefix?: string }): Promise<{ sent: number; ratePublished: number; freshness: LatencyResult; late: LatencyResult; amended: LatencyResult }> {
  const { nc, clickhouse, db } = options;
  const count = Math.round(options.rate * options.seconds);
  let probe = 0;
  const realtimeProbes: Array<Promise<number>> = [];
  const lateProbes: Array<Promise<number>> = [];
  const amendProbes: Array<Promise<number>> = [];
  const amending = new Map<string, { sentAt: number; found: (ms: number) => void }>();
  const amendedAlerts = nc.subscribe('alerts.amended.>', {
    callback: (_err, msg) => {
      const alert = msg.json<{ report: string; groupKey: string }>();
      const waiting = alert.report === options.report ? amending.get(alert.groupKey) : undefined;
      if (!waiting) return;
      amending.delete(alert.groupKey);
      waiting.found(performance.now() - waiting.sentAt);
    },
  });
  const amendedAlert = (groupKey: string, sentAt: number) => new Promise<number>((found) => {
    amending.set(groupKey, { sentAt, found });
    setTimeout(() => amending.delete(groupKey) && found(Number.POSITIVE_INFINITY), 60_000).unref();
  });

  // One query for both views and every probe still pending, every 40 ms: a query costs
  // chDB about 2 ms of CPU, so the probes must stay a light load on the box they measure.
  // It carries no parameters: chDB runs calls with parameters one at a time across the
  // whole process, so the probes would otherwise wait for the revisor's recomputations
  // and time them instead of the views. The prefixes are the probes' own, constant.
  const pending = { realtime: new Map<string, { sentAt: number; found: (ms: number) => void }>(), late: new Map<string, { sentAt: number; found: (ms: number) => void }>() };
  let watching = true;
  const watcher = (async () => {
    const query = `SELECT 'realtime' AS view, '' AS report, group_key FROM ${db}.realtime_windows WHERE startsWith(group_key, '["probe-')
      UNION DISTINCT SELECT 'late' AS view, report, group_key FROM ${db}.report_revisions WHERE startsWith(group_key, '["late-')`;
    while (watching || pending.realtime.size + pending.late.size > 0) {
      if (pending.realtime.size + pending.late.size > 0) {
        const rows = await (await clickhouse.query({ query, format: 'JSONEachRow' })).json<{ view: 'realtime' | 'late'; report: string; group_key: string }>();
        const now = performance.now();
        for (const { view, report, group_key } of rows) {
          if (view === 'late' && report !== options.report) continue;
          const probe = pending[view].get(group_key);
          if (!probe) continue;
          pending[view].delete(group_key);
          probe.found(now - probe.sentAt);
        }
        for (const waiting of [pending.realtime, pending.late]) {
          for (const [key, probe] of waiting) {
            if (now - probe.sentAt < 60_000) continue;
            waiting.delete(key);
            probe.found(Number.POSITIVE_INFINITY);
          }
        }
      }
      await new Promise((r) => setTimeout(r, 40));
    }
  })();
  const visible = (view: 'realtime' | 'late', groupKey: string, sentAt: number) => new Promise<number>((found) => pending[view].set(groupKey, { sentAt, found }));

  let loading = true;
  const loadStarted = performance.now();
  const load = publishInProcess(options.natsUrl, options.from, count, Date.now(), options.rate).finally(() => {
    loading = false;
  });
  await new Promise((r) => setTimeout(r, 250));
  while (loading) {
    probe++;
    const now = Date.now();
    const source = `probe-${options.probePrefix ?? ''}${probe}`;
    const sentAt = performance.now();
    nc.publish(`ingest.${source}.sale`, JSON.stringify({ id: source, occurredAt: now, data: { amount: '1.00' } }));
    realtimeProbes.push(visible('realtime', JSON.stringify([source]), sentAt));
    const lateSource = `late-${options.probePrefix ?? ''}${probe}`;
    nc.publish(`ingest.${lateSource}.sale`, JSON.stringify({ id: lateSource, occurredAt: now - 86_400_000, data: { amount: '2.00' } }));
    lateProbes.push(visible('late', JSON.stringify([lateSource]), sentAt));
    if (probe % AMEND_EVERY === 0) {
      const amendSource = `amend-${options.probePrefix ?? ''}${probe}`;
      nc.publish(`ingest.${amendSource}.sale`, JSON.stringify({ id: amendSource, occurredAt: now - CLOSED_DAY_AGO_MS, data: { amount: '3.00' } }));
      amendProbes.push(amendedAlert(JSON.stringify([amendSource]), sentAt));
    }
    await nc.flush();
    await Promise.race([load, new Promise((r) => setTimeout(r, PROBE_EVERY_MS))]);
  }
  await load;
  const loadMs = performance.now() - loadStarted;
  const [freshness, late, amended] = await Promise.all([Promise.all(realtimeProbes), Promise.all(lateProbes), Promise.all(amendProbes)]);
  amendedAlerts.unsubscribe();
  if (process.env.PROBE_SAMPLES) process.stderr.write(`SAMPLES realtime ${freshness.map(Math.round).join(' ')}\nSAMPLES late ${late.map(Math.round).join(' ')}\n`);
  watching = false;
  await watcher;
  return { sent: count, ratePublished: Math.round((count / loadMs) * 1000), freshness: summarize(freshness), late: summarize(late), amended: summarize(amended) };
}
