import type { ClickHouseClient } from '@clickhouse/client';
import type { ReportConfig } from '../../core/config.ts';
import { realtimeCarry, realtimeMerge, type MeasureFn } from '../../core/measures.ts';
import type { WindowResult } from '../../processors/logic/windows.ts';
import type { Refusal } from '../../processors/realtime/folds.ts';
import { MONEY_TYPE } from '../../clickhouse/migrations.ts';
import type { SeqRange } from '../../nats/seq-ranges.ts';

export type RealtimeRow = {
  report: string;
  size_ms: number;
  window_start: number;
  window_end: number;
  group_key: string;
  instance: string;
  emission: number;
  timing: string;
  final: number;
  events: number;
  measures: Record<string, string>;
  parts: Record<string, string>;
  uniq_values: Record<string, string[]>;
  emitted_at: number;
  late_refused: number;
  folded: SeqRange[];
  watermarks: Record<string, number>;
  /** the number of the instance's checkpoint this row was written with */
  checkpoint: number;
  /** the row's figures as of the instance's last committed checkpoint: what counts if it is fenced below `checkpoint` */
  prev_events: number;
  prev_measures: Record<string, string>;
  prev_parts: Record<string, string>;
  prev_uniq_values: Record<string, string[]>;
  prev_late_refused: number;
};

/** A row's own figures, as `prev_*` of the rows that come after it; nothing before a window's first committed row. */
export type CommittedFigures = Pick<RealtimeRow, 'events' | 'measures' | 'parts' | 'uniq_values' | 'late_refused'>;
const NOTHING: CommittedFigures = { events: 0, measures: {}, parts: {}, uniq_values: {}, late_refused: 0 };

/** Stamps a row with the checkpoint it goes with and what its window held at the last committed one. */
export function numbered(row: RealtimeRow, checkpoint: number, committed: CommittedFigures = NOTHING): RealtimeRow {
  return { ...row, checkpoint, prev_events: committed.events, prev_measures: committed.measures, prev_parts: committed.parts, prev_uniq_values: committed.uniq_values, prev_late_refused: committed.late_refused };
}

const unnumbered = { checkpoint: 0, prev_events: 0, prev_measures: {}, prev_parts: {}, prev_uniq_values: {}, prev_late_refused: 0 };

/** Refusal rows go under the instance's id with this suffix, so they never replace its figure row of the window. */
export const REFUSALS_SUFFIX = '/late';

export function realtimeRow(result: WindowResult, instance: string, emittedAt: number): RealtimeRow {
  const parts: Record<string, string> = {};
  const uniqValues: Record<string, string[]> = {};
  for (const [name, acc] of Object.entries(result.state.measures)) {
    const carry = realtimeCarry(acc);
    for (const [part, value] of Object.entries(carry.parts ?? {})) parts[`${name}.${part}`] = value;
    if (carry.values) uniqValues[name] = carry.values;
  }
  return {
    report: result.report,
    size_ms: result.size,
    window_start: result.start,
    window_end: result.end,
    group_key: result.group,
    instance,
    emission: result.emission,
    timing: result.timing,
    final: result.final ? 1 : 0,
    events: result.events,
    measures: result.measures,
    parts,
    uniq_values: uniqValues,
    emitted_at: emittedAt,
    late_refused: 0,
    folded: [],
    watermarks: {},
    ...unnumbered,
  };
}

/** The events one instance refused for a closed window: no figure (events 0), replaced as the count grows. */
export function refusalRow(refusal: Refusal, instance: string, emittedAt: number): RealtimeRow {
  return {
    report: refusal.report,
    size_ms: refusal.size,
    window_start: refusal.start,
    window_end: refusal.end,
    group_key: refusal.group,
    instance: `${instance}${REFUSALS_SUFFIX}`,
    emission: refusal.count,
    timing: 'late',
    final: 1,
    events: 0,
    measures: {},
    parts: {},
    uniq_values: {},
    emitted_at: emittedAt,
    late_refused: refusal.count,
    folded: [],
    watermarks: {},
    ...unnumbered,
  };
}

/**
 * An instance's checkpoint (size_ms 0, report ''), written in the same insert as its
 * window rows: the EVENTS sequences whose events those rows hold, and each report's
 * closing watermark (omitted while −Infinity). `window_end` is the write time, so the
 * table's TTL drops the checkpoints of instances long gone.
 */
export function checkpointRow(instance: string, writes: number, folded: SeqRange[], watermarks: Record<string, number>, emittedAt: number, retired = false): RealtimeRow {
  return {
    report: '',
    size_ms: 0,
    window_start: 0,
    window_end: emittedAt,
    group_key: '',
    instance,
    emission: writes,
    timing: 'early',
    // final: the instance stopped; no one waits for it, and it has no say in closing windows
    final: retired ? 1 : 0,
    events: 0,
    measures: {},
    parts: {},
    uniq_values: {},
    emitted_at: emittedAt,
    late_refused: 0,
    folded,
    watermarks: Object.fromEntries(Object.entries(watermarks).filter(([, w]) => Number.isFinite(w))),
    ...unnumbered,
    checkpoint: writes,
  };
}

export type OtherCheckpoint = { instance: string; folded: SeqRange[]; emittedAt: number; retired: boolean };

/** The latest checkpoint of every other instance: what it has folded and written, and when it last wrote. */
export async function otherCheckpoints(client: ClickHouseClient, db: string, instance: string): Promise<OtherCheckpoint[]> {
  const result = await client.query({
    query: `SELECT instance, folded, toUnixTimestamp64Milli(emitted_at) AS emitted_at, final FROM ${db}.realtime_windows FINAL WHERE size_ms = 0 AND report = '' AND instance != {instance:String}`,
    query_params: { instance },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ instance: string; folded: Array<[string | number, string | number]>; emitted_at: string | number; final: number }>();
  return rows.map((row) => ({ instance: row.instance, emittedAt: Number(row.emitted_at), retired: Number(row.final) === 1, folded: row.folded.map(([from, to]): SeqRange => [Number(from), Number(to)]) }));
}

/** One insert, one part: the checkpoint row lands with the window rows it describes, or neither does. */
export async function insertRealtime(client: ClickHouseClient, db: string, rows: RealtimeRow[]): Promise<void> {
  if (rows.length === 0) return;
  // refused rows: the processor isolates and files them (refused-rows.ts insertOrFile)
  await client.insert({ table: `${db}.realtime_windows`, values: rows, format: 'JSONEachRow' });
}

/**
 * Says that `instance`'s rows numbered above `checkpoint` do not count (realtime/fence.ts):
 * written by the instance that fenced it, before it folds any of its messages. Idempotent.
 */
export async function insertFence(client: ClickHouseClient, db: string, instance: string, checkpoint: number, by: string, at: number): Promise<void> {
  await client.insert({ table: `${db}.realtime_fences`, values: [{ instance, checkpoint, fenced_by: by, fenced_at: at }], format: 'JSONEachRow' });
}

/** How one measure's per-instance partial values combine into the window's figure: the function's SQL (src/core/measures.ts) over this table's columns. */
const mergeExpression = (name: string, fn: MeasureFn): string =>
  realtimeMerge(fn, { figure: `measures['${name}']`, has: `mapContains(measures, '${name}')`, part: (part) => `parts['${name}.${part}']`, values: `uniq_values['${name}']` });

/**
 * A report's rows as they count: an instance fenced at checkpoint k (realtime_fences)
 * counts with what its rows held at its last committed checkpoint (`prev_*`) where a row
 * was written with a number above k; its refusal rows (`<id>/late`) likewise.
 */
const counted = (db: string, report: string): string => {
  const base = `if(endsWith(instance, '${REFUSALS_SUFFIX}'), substring(instance, 1, length(instance) - ${REFUSALS_SUFFIX.length}), instance)`;
  const stale = `(fence.instance != '' AND w.checkpoint > fence.upto)`;
  return `(SELECT w.report AS report, w.size_ms AS size_ms, w.window_start AS window_start, w.window_end AS window_end, w.group_key AS group_key,
        w.instance AS instance, w.final AS final, w.emitted_at AS emitted_at,
        if(${stale}, w.prev_events, w.events) AS events, if(${stale}, w.prev_measures, w.measures) AS measures,
        if(${stale}, w.prev_parts, w.parts) AS parts, if(${stale}, w.prev_uniq_values, w.uniq_values) AS uniq_values,
        if(${stale}, w.prev_late_refused, w.late_refused) AS late_refused
      FROM (SELECT *, ${base} AS base FROM ${db}.realtime_windows FINAL WHERE report = '${report}') AS w
      LEFT JOIN (SELECT instance, min(checkpoint) AS upto FROM ${db}.realtime_fences GROUP BY instance) AS fence ON w.base = fence.instance)`;
};

/**
 * `realtime_latest`: each window's figure with every instance's latest emission merged
 * exactly (sums add, min/max compare, avg from summed parts, uniq from the union of
 * values), the events refused as late, and whether it is closed: every live instance's
 * watermark for the report has passed its end (a fenced one has no say). An instance is live while its checkpoint
 * is at most `livenessMs` older than the newest one and it has not stopped, so a
 * crashed or stopped instance stops holding windows open; an instance that has closed nothing of the report yet has no say. With
 * no such instance, a window is closed when every row of it says final. Generated from
 * the report definitions, whose names are validated identifiers, and replaced whenever
 * a processor starts with new definitions.
 */
export async function replaceRealtimeView(client: ClickHouseClient, db: string, reports: ReportConfig[], livenessMs = 30_000): Promise<void> {
  const withWindows = reports.filter((r) => r.windows.length > 0);
  const selects = withWindows.map((report) => {
    const entries = Object.entries(report.measures).map(([name, m]) => `'${name}', CAST(${mergeExpression(name, m.fn)} AS Nullable(${MONEY_TYPE}))`);
    const closing = `(SELECT minOrNull(watermarks['${report.name}']) FROM ${db}.realtime_windows FINAL
        WHERE size_ms = 0 AND report = '' AND final = 0 AND mapContains(watermarks, '${report.name}')
          AND instance NOT IN (SELECT instance FROM ${db}.realtime_fences)
          AND emitted_at >= (SELECT max(emitted_at) FROM ${db}.realtime_windows WHERE size_ms = 0 AND report = '') - toIntervalMillisecond(${Math.round(livenessMs)}))`;
    return `SELECT report, size_ms, window_start, window_end, group_key, sum(events) AS events,
        mapFilter((k, v) -> v IS NOT NULL, map(${entries.join(', ')})) AS measures,
        uniqExactIf(instance, NOT endsWith(instance, '${REFUSALS_SUFFIX}')) AS instances, max(emitted_at) AS emitted_at,
        sum(late_refused) AS late_refused,
        ifNull(toUnixTimestamp64Milli(any(window_end)) <= ${closing}, min(final) = 1) AS closed
      FROM ${counted(db, report.name)}
      GROUP BY report, size_ms, window_start, window_end, group_key`;
  });
  const body = selects.length
    ? selects.join('\nUNION ALL\n')
    : `SELECT report, size_ms, window_start, window_end, group_key, events, measures, toUInt64(1) AS instances, emitted_at, late_refused, true AS closed FROM ${db}.realtime_windows WHERE 0`;
  await client.command({ query: `CREATE OR REPLACE VIEW ${db}.realtime_latest AS ${body}` });
}
