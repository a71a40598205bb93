import type { ClickHouseClient } from '@clickhouse/client';
import { wellFormed } from '../../core/field-limits.ts';
import type { Slice, WindowStats, WindowTotals } from '../../monitor/slices.ts';

/**
 * No row refusal possible, so no isolation: numbers, an instance name of ours, and the
 * source, checked at the gateway (field-limits.ts) and made well-formed here for anything
 * published on EVENTS some other way.
 */
export async function insertDelaySlices(client: ClickHouseClient, db: string, instance: string, slices: Slice[]): Promise<void> {
  if (slices.length === 0) return;
  await client.insert({
    table: `${db}.delay_slices`,
    values: slices.map((s) => ({ source: wellFormed(s.source), slice_start: s.sliceStart, instance, events: s.events, late: s.late, worst_ms: s.worstMs, bins: s.hist })),
    format: 'JSONEachRow',
  });
}

/** The slices of [from, to) summed per source, over every instance that wrote them. */
export async function windowTotals(client: ClickHouseClient, db: string, from: number, to: number): Promise<WindowTotals[]> {
  const result = await client.query({
    query: `SELECT source, sum(events) AS events, sum(late) AS late, max(worst_ms) AS worst_ms, sumMap(bins) AS bins
      FROM ${db}.delay_slices
      WHERE slice_start >= fromUnixTimestamp64Milli({from:Int64}) AND slice_start < fromUnixTimestamp64Milli({to:Int64})
      GROUP BY source ORDER BY source`,
    query_params: { from, to },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ source: string; events: string; late: string; worst_ms: string; bins: Record<string, string> }>();
  return rows.map((r) => ({
    source: r.source,
    events: Number(r.events),
    late: Number(r.late),
    worstMs: Number(r.worst_ms),
    hist: Object.fromEntries(Object.entries(r.bins).map(([bin, n]) => [bin, Number(n)])),
  }));
}

export type DelayStatsRow = WindowStats & { computedAt: number; windowLabel: string; windowMs: number };

/** Idempotent per (source, window, computed_at): instances writing the same aligned instant replace each other. */
export async function insertDelayStats(client: ClickHouseClient, db: string, rows: DelayStatsRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({
    table: `${db}.delay_stats`,
    values: rows.map((r) => ({
      computed_at: r.computedAt,
      source: wellFormed(r.source),
      window_label: r.windowLabel,
      window_ms: r.windowMs,
      events: r.events,
      late: r.late,
      late_share: r.lateShare,
      p50_ms: r.p50,
      p95_ms: r.p95,
      p99_ms: r.p99,
      worst_ms: r.worstMs,
    })),
    format: 'JSONEachRow',
  });
}
