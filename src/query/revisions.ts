import type { ClickHouseClient } from '@clickhouse/client';
import type { ReportConfig } from '../core/config.ts';
import { Decimal, formatDecimal } from '../core/decimal.ts';
import { groupLabel } from '../core/group-names.ts';

/** Read-side queries shared by the CLI (`tidemark report`) and the page's JSON API (src/ui). */

export type PublishedRevision = {
  groupKey: string;
  /** the group as named values ({source: 'store-9'}) */
  group: Record<string, string>;
  /** the group for people: `store-9`, `store-9 · TW`, `(all)` */
  label: string;
  revision: number;
  status: string;
  reason: string;
  computedAt: number;
  knownAt: number;
  events: number;
  lateEvents: number;
  measures: Record<string, string>;
};

type Row = {
  group_key: string;
  group: Record<string, string>;
  revision: number;
  status: string;
  reason: string;
  computed_at_ms: string;
  known_at_ms: string;
  events: string;
  late_events: string;
  measures: Record<string, string>;
};

const fromRow = (row: Row): PublishedRevision => ({
  groupKey: row.group_key,
  group: row.group,
  label: groupLabel(row.group_key),
  revision: Number(row.revision),
  status: row.status,
  reason: row.reason,
  computedAt: Number(row.computed_at_ms),
  knownAt: Number(row.known_at_ms),
  events: Number(row.events),
  lateEvents: Number(row.late_events),
  measures: Object.fromEntries(Object.entries(row.measures).map(([k, v]) => [k, formatDecimal(new Decimal(v))])),
});

/**
 * Revisions of one report day. `asOf`: per group, the latest revision whose figure
 * covers only what had been received by then (known_at <= asOf); `history`: all of them.
 */
export async function publishedRevisions(client: ClickHouseClient, db: string, report: string, day: string, options: { asOf?: number; history?: boolean } = {}): Promise<PublishedRevision[]> {
  const asOf = options.asOf === undefined ? '' : `AND known_at <= fromUnixTimestamp64Milli({asOf:Int64}, 'UTC')`;
  const latestOnly = options.history ? '' : 'LIMIT 1 BY group_key';
  const result = await client.query({
    query: `SELECT group_key, group, revision, status, reason, toUnixTimestamp64Milli(computed_at) AS computed_at_ms, toUnixTimestamp64Milli(known_at) AS known_at_ms, events, late_events, measures
      FROM ${db}.report_revisions FINAL
      WHERE report = {report:String} AND day = {day:Date} ${asOf}
      ORDER BY group_key, revision ${options.history ? 'ASC' : 'DESC'}
      ${latestOnly}`,
    query_params: { report, day, ...(options.asOf === undefined ? {} : { asOf: options.asOf }) },
    format: 'JSONEachRow',
  });
  return (await result.json<Row>()).map(fromRow);
}

/** Business days of a report that have events, in an inclusive range of days. */
export async function daysWithEvents(client: ClickHouseClient, db: string, report: ReportConfig, from?: string, to?: string): Promise<Array<{ day: string; events: number }>> {
  const result = await client.query({
    query: `SELECT toString(toDate(occurred_at, {tz:String})) AS day, count() AS events
      FROM ${db}.events FINAL
      WHERE type IN {types:Array(String)}
      GROUP BY day
      HAVING day >= {from:String} AND day <= {to:String}
      ORDER BY day`,
    query_params: { tz: report.timeZone, types: report.types, from: from ?? '0000-00-00', to: to ?? '9999-99-99' },
    format: 'JSONEachRow',
  });
  return (await result.json<{ day: string; events: string }>()).map((r) => ({ day: r.day, events: Number(r.events) }));
}
