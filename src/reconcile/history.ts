import type { ClickHouseClient } from '@clickhouse/client';
import { BASE_SETTINGS } from '../clickhouse/client.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import type { Clock } from '../core/time.ts';
import { insertActions, insertDiscrepancies, withStatus, type DiscrepancyRow, type DiscrepancyStatus, type RunRow } from '../sinks/clickhouse/recon-tables.ts';

export type Filter = { name?: string | undefined; period?: string | undefined; status?: DiscrepancyStatus | undefined; limit?: number | undefined };

const where = (filter: Filter, extra: string[] = []): string => {
  const parts = [...extra];
  // qualified: the selects alias converted columns under their own names
  if (filter.name !== undefined) parts.push('t.name = {name:String}');
  if (filter.period !== undefined) parts.push('t.period = {period:Date}');
  if (filter.status !== undefined) parts.push('t.status = {status:String}');
  return parts.length ? `WHERE ${parts.join(' AND ')}` : '';
};

async function select<T>(client: ClickHouseClient, query: string, filter: Filter, params: Record<string, unknown> = {}): Promise<T[]> {
  const defined = Object.entries({ ...filter, limit: filter.limit ?? 1_000, ...params }).filter(([, v]) => v !== undefined);
  const result = await client.query({ query, query_params: Object.fromEntries(defined), format: 'JSONEachRow', clickhouse_settings: BASE_SETTINGS });
  return result.json<T>();
}

const RUN_COLUMNS = `run_id, name, toString(period) AS period, mode, status, toUnixTimestamp64Milli(started_at) AS started_at,
  toUnixTimestamp64Milli(finished_at) AS finished_at, duration_ms, rows_a, rows_b, levels, segments_compared, segments_differing,
  rows_fetched, missing_in_a, missing_in_b, mismatches, duplicates, new_discrepancies, healed, queued, alerted, error, version`;

const DISCREPANCY_COLUMNS = `id, name, toString(period) AS period, type, side, key, count, diffs, record_a, record_b, status, action, mode, run_id,
  toUnixTimestamp64Milli(detected_at) AS detected_at, toUnixTimestamp64Milli(updated_at) AS updated_at, note, rank`;

const NUMERIC_RUN_FIELDS = ['started_at', 'finished_at', 'duration_ms', 'rows_a', 'rows_b', 'levels', 'segments_compared', 'segments_differing', 'rows_fetched', 'missing_in_a', 'missing_in_b', 'mismatches', 'duplicates', 'new_discrepancies', 'healed', 'queued', 'alerted', 'version'] as const;

/** 64-bit integers arrive quoted (BASE_SETTINGS); turned back into numbers here. */
const numbers = <T extends Record<string, unknown>>(row: T, fields: readonly string[]): T => ({ ...row, ...Object.fromEntries(fields.map((f) => [f, Number(row[f])])) });

export async function listRuns(client: ClickHouseClient, db: string, filter: Filter): Promise<RunRow[]> {
  const rows = await select<RunRow>(client, `SELECT ${RUN_COLUMNS} FROM ${db}.recon_runs AS t FINAL ${where({ ...filter, status: undefined })} ORDER BY started_at DESC LIMIT {limit:UInt32}`, { ...filter, status: undefined });
  return rows.map((r) => numbers(r, NUMERIC_RUN_FIELDS));
}

export async function listDiscrepancies(client: ClickHouseClient, db: string, filter: Filter): Promise<DiscrepancyRow[]> {
  const rows = await select<DiscrepancyRow>(client, `SELECT ${DISCREPANCY_COLUMNS} FROM ${db}.recon_discrepancies AS t FINAL ${where(filter)} ORDER BY name, period, type, key LIMIT {limit:UInt32}`, filter);
  return rows.map((r) => numbers(r, ['count', 'detected_at', 'updated_at', 'rank']));
}

export type Summary = { name: string; period: string; type: string; status: string; count: number };

export async function summarize(client: ClickHouseClient, db: string, filter: Filter): Promise<Summary[]> {
  const rows = await select<Summary>(client, `SELECT name, toString(period) AS period, toString(type) AS type, toString(status) AS status, count() AS count
    FROM ${db}.recon_discrepancies AS t FINAL ${where(filter)} GROUP BY name, period, type, status ORDER BY name, period, type, status LIMIT {limit:UInt32}`, filter);
  return rows.map((r) => ({ ...r, count: Number(r.count) }));
}

/**
 * Acknowledges findings (an operator has dealt with them): a new row version in status
 * `acknowledged`, and an audit row. Already acknowledged ones are left as they are;
 * an unknown id is an error, and then nothing is written.
 */
export async function acknowledge(client: ClickHouseClient, db: string, ids: string[], by: { actor: string; note: string; clock: Clock }): Promise<DiscrepancyRow[]> {
  const rows = await select<DiscrepancyRow>(client, `SELECT ${DISCREPANCY_COLUMNS} FROM ${db}.recon_discrepancies FINAL WHERE id IN {ids:Array(String)}`, {}, { ids });
  const found = new Map(rows.map((r) => [r.id, numbers(r, ['count', 'detected_at', 'updated_at', 'rank'])]));
  const missing = ids.filter((id) => !found.has(id));
  if (missing.length > 0) throw new TidemarkError(ErrorCodes.RECON_DISCREPANCY_NOT_FOUND, `no discrepancy with id ${missing.join(', ')}`);
  const at = by.clock.now();
  const acked = [...found.values()].filter((r) => r.status !== 'acknowledged').map((r) => withStatus(r, 'acknowledged', at, by.note || r.note));
  await insertDiscrepancies(client, db, acked);
  await insertActions(client, db, acked.map((r) => ({ name: r.name, period: r.period, discrepancy_id: r.id, action: 'acknowledged' as const, at, actor: by.actor, subject: '', msg_id: '', detail: by.note })));
  return acked;
}
