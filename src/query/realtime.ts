import type { ClickHouseClient } from '@clickhouse/client';
import { Decimal, formatDecimal } from '../core/decimal.ts';
import { groupLabel } from '../core/group-names.ts';
import { selectRows } from './select.ts';

/** A sliding window's figure, all processor instances merged (realtime_latest), with how its emissions came. */
export type RealtimeWindow = {
  sizeMs: number;
  windowStart: number;
  windowEnd: number;
  groupKey: string;
  label: string;
  events: number;
  measures: Record<string, string>;
  closed: boolean;
  lateRefused: number;
  emittedAt: number;
  /** emissions so far (summed over instances) */
  emissions: number;
  /** the latest emission's timing: `early` (before the window's end), `on_time` (at it), `late` (after, within the allowed lateness) */
  timing: string;
};

type Row = {
  size_ms: string; window_start_ms: string; window_end_ms: string; group_key: string; events: string;
  measures: Record<string, string | null>; closed: number | boolean; late_refused: string; emitted_at_ms: string;
  emissions: string; timing: string;
};

/**
 * The report's `limit` most recent windows (by start) and their groups. Emissions and timing come
 * from realtime_windows, where each instance's row keeps its latest emission's number and timing.
 */
export async function realtimeWindows(client: ClickHouseClient, db: string, report: string, limit = 24): Promise<RealtimeWindow[]> {
  const rows = await selectRows<Row>(client, `WITH recent AS (
      SELECT DISTINCT size_ms, window_start FROM ${db}.realtime_latest WHERE report = {report:String}
      ORDER BY window_start DESC, size_ms LIMIT {limit:UInt32}),
    timings AS (
      SELECT size_ms, window_start, group_key,
        sum(emission) AS emissions, toString(argMax(timing, emitted_at)) AS timing
      FROM ${db}.realtime_windows FINAL
      WHERE report = {report:String} AND (size_ms, window_start) IN (SELECT size_ms, window_start FROM recent) AND NOT endsWith(instance, '/late')
      GROUP BY size_ms, window_start, group_key)
    SELECT toString(l.size_ms) AS size_ms, toString(toUnixTimestamp64Milli(l.window_start)) AS window_start_ms,
      toString(toUnixTimestamp64Milli(l.window_end)) AS window_end_ms, l.group_key AS group_key, l.events AS events, l.measures AS measures,
      l.closed AS closed, l.late_refused AS late_refused, toString(toUnixTimestamp64Milli(l.emitted_at)) AS emitted_at_ms,
      t.emissions AS emissions, t.timing AS timing
    FROM ${db}.realtime_latest AS l
    LEFT JOIN timings AS t ON t.size_ms = l.size_ms AND t.window_start = l.window_start AND t.group_key = l.group_key
    WHERE l.report = {report:String} AND (l.size_ms, l.window_start) IN (SELECT size_ms, window_start FROM recent)
    ORDER BY l.window_start DESC, l.size_ms, l.group_key`, { report, limit });
  return rows.map((r) => ({
    sizeMs: Number(r.size_ms),
    windowStart: Number(r.window_start_ms),
    windowEnd: Number(r.window_end_ms),
    groupKey: r.group_key,
    label: groupLabel(r.group_key),
    events: Number(r.events),
    measures: Object.fromEntries(Object.entries(r.measures).filter(([, v]) => v !== null).map(([k, v]) => [k, formatDecimal(new Decimal(v!))])),
    closed: Boolean(Number(r.closed)),
    lateRefused: Number(r.late_refused),
    emittedAt: Number(r.emitted_at_ms),
    emissions: Number(r.emissions),
    timing: r.timing,
  }));
}
