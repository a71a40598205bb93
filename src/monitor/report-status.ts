import type { ClickHouseClient } from '@clickhouse/client';
import type { GroupProgress } from './deadlines.ts';

const STATUS_RANK = { preliminary: 1, final: 2 } as const;

/**
 * When each (report, day) got its first revision: a late event received after that
 * changed a figure already published. Keyed `report/day`.
 */
export async function firstRevisionTimes(client: ClickHouseClient, db: string, pairs: ReadonlyArray<{ report: string; day: string }>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (pairs.length === 0) return out;
  const result = await client.query({
    // aliases differ from the columns: ClickHouse would let an alias shadow its column in WHERE
    query: `SELECT report, toString(day) AS day_text, min(toUnixTimestamp64Milli(computed_at)) AS first_at
      FROM ${db}.report_revisions
      WHERE report IN {reports:Array(String)} AND day IN {days:Array(Date)}
      GROUP BY report, day`,
    query_params: { reports: [...new Set(pairs.map((p) => p.report))], days: [...new Set(pairs.map((p) => p.day))] },
    format: 'JSONEachRow',
  });
  for (const row of await result.json<{ report: string; day_text: string; first_at: string }>()) out.set(`${row.report}/${row.day_text}`, Number(row.first_at));
  return out;
}

/** Per day, per group: the latest status and when the group first had `status` or later (amended counts as past final). */
export async function groupProgress(client: ClickHouseClient, db: string, report: string, status: keyof typeof STATUS_RANK, days: readonly string[]): Promise<Map<string, GroupProgress[]>> {
  const out = new Map<string, GroupProgress[]>();
  if (days.length === 0) return out;
  const result = await client.query({
    query: `SELECT toString(day) AS day_text, group_key,
        argMax(toString(status), revision) AS latest_status,
        countIf(CAST(status, 'Int8') >= {rank:Int8}) AS reached,
        minIf(toUnixTimestamp64Milli(computed_at), CAST(status, 'Int8') >= {rank:Int8}) AS reached_at
      FROM ${db}.report_revisions FINAL
      WHERE report = {report:String} AND day IN {days:Array(Date)}
      GROUP BY day, group_key
      ORDER BY day, group_key`,
    query_params: { report, days: [...days], rank: STATUS_RANK[status] },
    format: 'JSONEachRow',
  });
  for (const row of await result.json<{ day_text: string; group_key: string; latest_status: string; reached: string; reached_at: string }>()) {
    const groups = out.get(row.day_text) ?? [];
    groups.push({ groupKey: row.group_key, status: row.latest_status, reachedAt: Number(row.reached) > 0 ? Number(row.reached_at) : null });
    out.set(row.day_text, groups);
  }
  return out;
}
