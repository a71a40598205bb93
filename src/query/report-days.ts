import type { ClickHouseClient } from '@clickhouse/client';
import { selectRows } from './select.ts';

/** A business day of a report as its latest revisions show it. */
export type ReportDaySummary = {
  day: string;
  groups: number;
  /** groups whose latest revision is in each status */
  preliminary: number;
  final: number;
  amended: number;
  /** the highest revision number of any group: 1 means nothing was revised yet */
  maxRevision: number;
  events: number;
  lateEvents: number;
  knownAt: number;
};

type Row = { day: string; groups: string; preliminary: string; final: string; amended: string; max_revision: string; events: string; late_events: string; known_at_ms: string };

/** The most recent `limit` days that have revisions, newest first. */
export async function reportDays(client: ClickHouseClient, db: string, report: string, limit = 60): Promise<ReportDaySummary[]> {
  const rows = await selectRows<Row>(client, `SELECT toString(day) AS day, count() AS groups,
      countIf(status = 'preliminary') AS preliminary, countIf(status = 'final') AS final, countIf(status = 'amended') AS amended,
      max(revision) AS max_revision, sum(events) AS events, sum(late_events) AS late_events, toUnixTimestamp64Milli(max(known_at)) AS known_at_ms
    FROM ${db}.report_latest WHERE report = {report:String}
    GROUP BY day ORDER BY day DESC LIMIT {limit:UInt32}`, { report, limit });
  return rows.map((r) => ({
    day: r.day,
    groups: Number(r.groups),
    preliminary: Number(r.preliminary),
    final: Number(r.final),
    amended: Number(r.amended),
    maxRevision: Number(r.max_revision),
    events: Number(r.events),
    lateEvents: Number(r.late_events),
    knownAt: Number(r.known_at_ms),
  }));
}
