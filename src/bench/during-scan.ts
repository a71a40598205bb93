import type { ClickHouseClient } from '@clickhouse/client';
import type { NatsConnection } from '@nats-io/transport-node';
import { percentile } from './stats.ts';

export type DuringScan = { samples: number; p50: number; max: number };

const PROBE_EVERY_MS = 500;
const GIVE_UP_MS = 120_000;
const DAY_MS = 86_400_000;

const summary = (values: number[]): DuringScan => ({ samples: values.length, p50: percentile(values, 50), max: values.length ? Math.max(...values) : Number.NaN });

/**
 * Head-of-line blocking, measured: while `work` (a long scan: a big day's first state,
 * a replay) runs, publishes every 500 ms a sale for now (realtime view) and a late sale
 * for yesterday, a small day (its revision), each from its own store, and times each
 * from publish to its row. The watcher's query is constant SQL, as the other probes'.
 */
export async function probeDuring<T>(options: { nc: NatsConnection; clickhouse: ClickHouseClient; db: string; report: string; tag: string; type: string }, work: Promise<T>): Promise<{ result: T; realtime: DuringScan; revision: DuringScan }> {
  const { nc, clickhouse, db, tag } = options;
  let done = false;
  const settled = work.finally(() => {
    done = true;
  });
  const pending = new Map<string, { sentAt: number; found: (ms: number) => void }>();
  const probes: { realtime: Array<Promise<number>>; revision: Array<Promise<number>> } = { realtime: [], revision: [] };
  const report = options.report.replace(/'/g, "''");
  const query = `SELECT group_key FROM ${db}.realtime_windows WHERE startsWith(group_key, '["${tag}-rt-')
    UNION DISTINCT SELECT group_key FROM ${db}.report_revisions WHERE report = '${report}' AND startsWith(group_key, '["${tag}-late-')`;
  const watcher = (async () => {
    while (!done || pending.size > 0) {
      if (pending.size > 0) {
        const rows = await (await clickhouse.query({ query, format: 'JSONEachRow' })).json<{ group_key: string }>();
        const now = performance.now();
        for (const { group_key } of rows) {
          pending.get(group_key)?.found(now - pending.get(group_key)!.sentAt);
          pending.delete(group_key);
        }
        for (const [key, probe] of pending) {
          if (now - probe.sentAt < GIVE_UP_MS) continue;
          pending.delete(key);
          probe.found(Number.POSITIVE_INFINITY);
        }
      }
      await new Promise((r) => setTimeout(r, 40));
    }
  })();
  const visible = (source: string, sentAt: number) => new Promise<number>((found) => pending.set(JSON.stringify([source]), { sentAt, found }));
  for (let i = 0; !done; i++) {
    const now = Date.now();
    const sentAt = performance.now();
    for (const [kind, occurredAt] of [['rt', now], ['late', now - DAY_MS]] as const) {
      const source = `${tag}-${kind}-${i}`;
      nc.publish(`ingest.${source}.${options.type}`, JSON.stringify({ id: source, occurredAt, data: { amount: '1.00' } }));
      probes[kind === 'rt' ? 'realtime' : 'revision'].push(visible(source, sentAt));
    }
    await nc.flush();
    await Promise.race([settled.catch(() => undefined), new Promise((r) => setTimeout(r, PROBE_EVERY_MS))]);
  }
  const result = await settled;
  const [realtime, revision] = await Promise.all([Promise.all(probes.realtime), Promise.all(probes.revision)]);
  await watcher;
  return { result, realtime: summary(realtime), revision: summary(revision) };
}
