import type { ClickHouseClient } from '@clickhouse/client';
import { wellFormed } from '../../core/field-limits.ts';

export type AlertRow = {
  id: string;
  kind: string;
  source: string;
  sla: string;
  subject: string;
  at: number;
  raised_at: number;
  stored_at: number;
  seq: number;
  payload: string;
};

export type StoredAlertMessage = { subject: string; seq: number; storedAt: number; data: Uint8Array };

const decoder = new TextDecoder();
// anyone may publish on alerts.>: what a body says is made safe for the table (a lone surrogate, a time past DateTime64)
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? wellFormed(v) : undefined);
const MAX_TIME_MS = Date.parse('2262-01-01T00:00:00Z');
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v < MAX_TIME_MS ? v : undefined);

/**
 * One row per message on ALERTS, whoever raised it: the monitor's alerts carry
 * `source`, `sla` and `raisedAt`; the processor's `ReportAmended` carries `report`
 * and `at`. What a message lacks comes from its subject (`alerts.<kind>.<source>`)
 * and its stream metadata, so nothing published there is ever dropped.
 */
export function alertRow(msg: StoredAlertMessage): AlertRow {
  const text = decoder.decode(msg.data);
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
  } catch {
    // kept as payload text; the row still records that something was published
  }
  const [, kindToken, ...rest] = msg.subject.split('.');
  return {
    id: str(body.id) ?? `ALERTS-${msg.seq}`,
    kind: str(body.kind) ?? kindToken ?? 'unknown',
    source: str(body.source) ?? str(body.report) ?? rest.join('.'),
    sla: str(body.sla) ?? '',
    subject: msg.subject,
    at: num(body.at) ?? msg.storedAt,
    raised_at: num(body.raisedAt) ?? msg.storedAt,
    stored_at: msg.storedAt,
    seq: msg.seq,
    payload: text,
  };
}

/**
 * Idempotent: `id` is in the replacing key, so a re-delivered alert collapses into its first row.
 * Refused rows: the caller (monitor/alert-sink.ts) isolates and files them.
 */
export async function insertAlerts(client: ClickHouseClient, db: string, rows: AlertRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table: `${db}.alerts`, values: rows, format: 'JSONEachRow' });
}
