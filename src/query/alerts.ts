import type { ClickHouseClient } from '@clickhouse/client';
import { selectRows } from './select.ts';

export type AlertSummary = { id: string; kind: string; source: string; subject: string; at: number; raisedAt: number; payload: unknown };

type Row = { id: string; kind: string; source: string; subject: string; at_ms: string; raised_at_ms: string; payload: string };

const parsed = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

/** The newest `limit` alerts of every kind, as stored from ALERTS. */
export async function recentAlerts(client: ClickHouseClient, db: string, limit = 50): Promise<AlertSummary[]> {
  const rows = await selectRows<Row>(client, `SELECT id, kind, source, subject, toString(toUnixTimestamp64Milli(at)) AS at_ms,
      toString(toUnixTimestamp64Milli(raised_at)) AS raised_at_ms, payload
    FROM ${db}.alerts FINAL ORDER BY raised_at DESC, id LIMIT {limit:UInt32}`, { limit });
  return rows.map((r) => ({ id: r.id, kind: r.kind, source: r.source, subject: r.subject, at: Number(r.at_ms), raisedAt: Number(r.raised_at_ms), payload: parsed(r.payload) }));
}
