import type { ClickHouseClient } from '@clickhouse/client';
import type { Discrepancy, DiscrepancyType } from '../../reconcile/logic/types.ts';

export type ReconMode = 'batch' | 'stream';
export type DiscrepancyStatus = 'open' | 'healed' | 'acknowledged';
export type ReconAction = 'healed' | 'queued' | 'acknowledged' | 'alerted';

/** Status rank = the row version: a later status always wins over an earlier one, never the reverse. */
export const STATUS_RANK: Record<DiscrepancyStatus, number> = { open: 1, healed: 2, acknowledged: 3 };

export type RunRow = {
  run_id: string;
  name: string;
  period: string;
  mode: ReconMode;
  status: 'running' | 'succeeded' | 'failed';
  started_at: number;
  finished_at: number;
  duration_ms: number;
  rows_a: number;
  rows_b: number;
  levels: number;
  segments_compared: number;
  segments_differing: number;
  rows_fetched: number;
  missing_in_a: number;
  missing_in_b: number;
  mismatches: number;
  duplicates: number;
  new_discrepancies: number;
  healed: number;
  queued: number;
  alerted: number;
  error: string;
  version: number;
};

export type DiscrepancyRow = {
  id: string;
  name: string;
  period: string;
  type: DiscrepancyType;
  side: '' | 'A' | 'B';
  key: string;
  count: number;
  diffs: string;
  record_a: string;
  record_b: string;
  status: DiscrepancyStatus;
  action: 'none' | 'publish' | 'manual';
  mode: ReconMode;
  run_id: string;
  detected_at: number;
  updated_at: number;
  note: string;
  rank: number;
};

export type ActionRow = {
  name: string;
  period: string;
  discrepancy_id: string;
  action: ReconAction;
  at: number;
  actor: string;
  subject: string;
  msg_id: string;
  detail: string;
};

export function discrepancyRow(d: Discrepancy, context: { mode: ReconMode; runId: string; action: DiscrepancyRow['action']; at: number }): DiscrepancyRow {
  return {
    id: d.id,
    name: d.name,
    period: d.period,
    type: d.type,
    side: d.side ?? '',
    key: JSON.stringify(d.key),
    count: d.count,
    diffs: JSON.stringify(d.diffs),
    record_a: d.a === null ? '' : JSON.stringify(d.a),
    record_b: d.b === null ? '' : JSON.stringify(d.b),
    status: 'open',
    action: context.action,
    mode: context.mode,
    run_id: context.runId,
    detected_at: context.at,
    updated_at: context.at,
    note: '',
    rank: STATUS_RANK.open,
  };
}

/** The same row in a later status: a new version of it, not an update. */
export const withStatus = (row: DiscrepancyRow, status: DiscrepancyStatus, at: number, note = row.note): DiscrepancyRow => ({ ...row, status, updated_at: at, note, rank: STATUS_RANK[status] });

// refused rows: every caller isolates and files them (refused-rows.ts insertOrFile)
const insert = async (client: ClickHouseClient, table: string, values: object[]): Promise<void> => {
  if (values.length === 0) return;
  await client.insert({ table, values, format: 'JSONEachRow' });
};

export const insertRuns = (client: ClickHouseClient, db: string, rows: RunRow[]): Promise<void> => insert(client, `${db}.recon_runs`, rows);
export const insertDiscrepancies = (client: ClickHouseClient, db: string, rows: DiscrepancyRow[]): Promise<void> => insert(client, `${db}.recon_discrepancies`, rows);
export const insertActions = (client: ClickHouseClient, db: string, rows: ActionRow[]): Promise<void> => insert(client, `${db}.recon_actions`, rows);
