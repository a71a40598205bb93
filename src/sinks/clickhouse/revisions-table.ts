import type { ClickHouseClient } from '@clickhouse/client';
import { namedGroup } from '../../core/group-names.ts';
import type { RevisionRecord } from '../../processors/logic/revisions.ts';

export type RevisionRow = {
  report: string;
  day: string;
  group_key: string;
  group: Record<string, string>;
  revision: number;
  status: string;
  reason: string;
  computed_at: number;
  known_at: number;
  events: number;
  late_events: number;
  measures: Record<string, string>;
};

/** `groupBy`: the report's, naming the values of the group key in the `group` column. */
export const revisionRow = (report: { name: string; groupBy: readonly string[] }, day: string, groupKey: string, record: RevisionRecord): RevisionRow => ({
  report: report.name,
  day,
  group_key: groupKey,
  group: namedGroup(report.groupBy, groupKey),
  revision: record.revision,
  status: record.status,
  reason: record.reason,
  computed_at: record.computedAt,
  known_at: record.knownAt,
  events: record.events,
  late_events: record.lateEvents,
  measures: { ...record.measures },
});

/** Idempotent: (report, day, group_key, revision) is the table's replacing key, so a re-sent row collapses into the first. */
export async function insertRevisions(client: ClickHouseClient, db: string, rows: RevisionRow[]): Promise<void> {
  if (rows.length === 0) return;
  // refused rows: the revisor isolates and files them (refused-rows.ts insertOrFile)
  await client.insert({ table: `${db}.report_revisions`, values: rows, format: 'JSONEachRow' });
}
