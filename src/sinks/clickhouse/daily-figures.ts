import type { ClickHouseClient } from '@clickhouse/client';
import type { ReportConfig } from '../../core/config.ts';
import { dailyFigure, dailySelect } from '../../core/measures.ts';
import { dayEndMs, dayStartMs } from '../../core/business-day.ts';
import { canonicalJson } from '../../core/canonical.ts';
import type { Observation } from '../../processors/logic/revisions.ts';

/** The figure of one group of a report's day, computed from the event store. */
export type GroupFigure = Observation & { groupKey: string };

export type Sql = { select: string[]; params: Record<string, unknown> };

/**
 * SQL for the report's measures, each function's from the registry (src/core/measures.ts),
 * with the same semantics as its accumulator: typed decimals come from `nums`, presence
 * and distinctness from the canonical JSON text in `data`. Field names are query
 * parameters, never spliced into the SQL.
 */
function measureSql(report: ReportConfig): Sql {
  const select: string[] = [];
  const params: Record<string, unknown> = {};
  Object.values(report.measures).forEach((measure, i) => {
    const f = `{m${i}:String}`;
    if (measure.field !== undefined) params[`m${i}`] = measure.field;
    const raw = `JSONExtractRaw(data, ${f})`;
    const sql = dailySelect(measure.fn, { everyEvent: measure.field === undefined, decimal: `nums[${f}]`, typed: `mapContains(nums, ${f})`, raw, present: `${raw} NOT IN ('', 'null')` });
    select.push(`toString(${sql.value}) AS m${i}_v`);
    if (sql.values !== undefined) select.push(`${sql.values} AS m${i}_n`);
  });
  return { select, params };
}

export function groupSql(report: ReportConfig): Sql {
  const params: Record<string, unknown> = {};
  const select = report.groupBy.map((field, i) => {
    if (field === 'source' || field === 'type') return `${field} AS g${i}`;
    if (field === 'key') return `key AS g${i}`;
    params[`g${i}`] = field.slice('data.'.length);
    return `JSONExtractRaw(data, {g${i}:String}) AS g${i}`;
  });
  return { select, params };
}

export type Row = Record<string, string | number | null>;

export function groupKeyOf(report: ReportConfig, row: Row): string {
  if (report.groupBy.length === 0) return '';
  const values = report.groupBy.map((field, i) => {
    const value = row[`g${i}`] ?? null;
    if (!field.startsWith('data.')) return value;
    return value === '' || value === null ? null : (JSON.parse(String(value)) as unknown);
  });
  return canonicalJson(values);
}

function measuresOf(report: ReportConfig, row: Row): Record<string, string> {
  const out: Record<string, string> = {};
  Object.entries(report.measures).forEach(([name, measure], i) => {
    const figure = dailyFigure(measure.fn, String(row[`m${i}_v`]), Number(row[`m${i}_n`] ?? 0));
    if (figure !== undefined) out[name] = figure;
  });
  return out;
}

/**
 * Every group's figure for one business day of a report, straight from `events`
 * (FINAL, so each event id counts once). With `asOf`, only what had been received
 * by then: the raw-event side of the as-of check.
 */
export async function dailyFigures(client: ClickHouseClient, db: string, report: ReportConfig, day: string, asOf?: number): Promise<GroupFigure[]> {
  const measures = measureSql(report);
  const groups = groupSql(report);
  const groupBy = report.groupBy.map((_, i) => `g${i}`);
  const query = `
    SELECT ${[...groups.select, ...measures.select, 'count() AS events', 'toUnixTimestamp64Milli(max(received_at)) AS known_at'].join(', ')}
    FROM ${db}.events FINAL
    WHERE type IN {types:Array(String)}
      AND occurred_at >= fromUnixTimestamp64Milli({start:Int64}, 'UTC')
      AND occurred_at < fromUnixTimestamp64Milli({end:Int64}, 'UTC')
      ${asOf === undefined ? '' : `AND received_at <= fromUnixTimestamp64Milli({asOf:Int64}, 'UTC')`}
    ${groupBy.length ? `GROUP BY ${groupBy.join(', ')}` : ''}
    ${groupBy.length ? '' : 'HAVING count() > 0'}`;
  const result = await client.query({
    query,
    format: 'JSONEachRow',
    query_params: {
      ...measures.params,
      ...groups.params,
      types: report.types,
      start: dayStartMs(day, report.timeZone),
      end: dayEndMs(day, report.timeZone),
      ...(asOf === undefined ? {} : { asOf }),
    },
  });
  const rows = await result.json<Row>();
  return rows.map((row) => ({
    groupKey: groupKeyOf(report, row),
    measures: measuresOf(report, row),
    events: Number(row.events),
    knownAt: Number(row.known_at),
  }));
}
