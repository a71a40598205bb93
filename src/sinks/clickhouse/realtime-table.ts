import type { ClickHouseClient } from '@clickhouse/client';
import type { ReportConfig } from '../../core/config.ts';
import { formatDecimal } from '../../processors/logic/measures.ts';
import type { WindowResult } from '../../processors/logic/windows.ts';
import { MONEY_TYPE } from '../../clickhouse/migrations.ts';

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
};

export function realtimeRow(result: WindowResult, instance: string, emittedAt: number): RealtimeRow {
  const parts: Record<string, string> = {};
  const uniqValues: Record<string, string[]> = {};
  for (const [name, acc] of Object.entries(result.state.measures)) {
    if (acc.fn === 'avg') {
      parts[`${name}.sum`] = formatDecimal(acc.sum);
      parts[`${name}.n`] = String(acc.n);
    } else if (acc.fn === 'uniq') {
      uniqValues[name] = [...acc.values];
    }
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
  };
}

export async function insertRealtime(client: ClickHouseClient, db: string, rows: RealtimeRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table: `${db}.realtime_windows`, values: rows, format: 'JSONEachRow' });
}

/** How one measure's per-instance partial values combine into the window's figure. */
function mergeExpression(name: string, fn: string): string {
  const has = `mapContains(measures, '${name}')`;
  switch (fn) {
    case 'count':
    case 'sum':
      return `sum(measures['${name}'])`;
    case 'min':
    case 'max':
      return `${fn}If(measures['${name}'], ${has})`;
    case 'avg':
      return `if(sum(parts['${name}.n']) = 0, NULL, toDecimal256(sum(parts['${name}.sum']) / sum(parts['${name}.n']), 10))`;
    default:
      return `length(groupUniqArrayArray(uniq_values['${name}']))`;
  }
}

/**
 * `realtime_latest`: each window's figure with every instance's latest emission merged
 * exactly (sums add, min/max compare, avg from summed parts, uniq from the union of
 * values). Generated from the report definitions, whose names are validated
 * identifiers, and replaced whenever a processor starts with new definitions.
 */
export async function replaceRealtimeView(client: ClickHouseClient, db: string, reports: ReportConfig[]): Promise<void> {
  const withWindows = reports.filter((r) => r.windows.length > 0);
  const selects = withWindows.map((report) => {
    const entries = Object.entries(report.measures).map(([name, m]) => `'${name}', CAST(${mergeExpression(name, m.fn)} AS Nullable(${MONEY_TYPE}))`);
    return `SELECT report, size_ms, window_start, window_end, group_key, sum(events) AS events,
        mapFilter((k, v) -> v IS NOT NULL, map(${entries.join(', ')})) AS measures,
        count() AS instances, max(emitted_at) AS emitted_at, min(final) = 1 AS closed
      FROM ${db}.realtime_windows FINAL
      WHERE report = '${report.name}'
      GROUP BY report, size_ms, window_start, window_end, group_key`;
  });
  const body = selects.length
    ? selects.join('\nUNION ALL\n')
    : `SELECT report, size_ms, window_start, window_end, group_key, events, measures, toUInt64(1) AS instances, emitted_at, true AS closed FROM ${db}.realtime_windows WHERE 0`;
  await client.command({ query: `CREATE OR REPLACE VIEW ${db}.realtime_latest AS ${body}` });
}
