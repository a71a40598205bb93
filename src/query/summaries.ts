import type { ClickHouseClient } from '@clickhouse/client';
import { selectRows } from './select.ts';

export type SagaSummary = {
  byStatus: Record<string, number>;
  parked: Array<{ sagaId: string; name: string; step: string; failure: string; updatedAt: number }>;
};

/** Sagas by status, and the parked ones (waiting for `tidemark saga retry|abort`), newest first. */
export async function sagaSummary(client: ClickHouseClient, db: string, limit = 20): Promise<SagaSummary> {
  const counts = await selectRows<{ status: string; n: string }>(client, `SELECT status, count() AS n FROM ${db}.sagas FINAL GROUP BY status ORDER BY status`);
  const parked = await selectRows<{ saga_id: string; name: string; step: string; failure: string; updated_ms: string }>(client,
    `SELECT saga_id, name, if(failed_step != '', failed_step, current_step) AS step, failure, toString(toUnixTimestamp64Milli(updated_at)) AS updated_ms
     FROM ${db}.sagas FINAL WHERE status = 'parked' ORDER BY updated_at DESC LIMIT {limit:UInt32}`, { limit });
  return {
    byStatus: Object.fromEntries(counts.map((c) => [c.status, Number(c.n)])),
    parked: parked.map((p) => ({ sagaId: p.saga_id, name: p.name, step: p.step, failure: p.failure, updatedAt: Number(p.updated_ms) })),
  };
}

export type ReconSummary = {
  /** discrepancies by status (open, healed, acknowledged) */
  byStatus: Record<string, number>;
  /** open discrepancies per reconciliation and type */
  open: Array<{ name: string; type: string; count: number }>;
  lastRuns: Array<{ name: string; period: string; mode: string; status: string; finishedAt: number; newDiscrepancies: number }>;
};

export async function reconSummary(client: ClickHouseClient, db: string, limit = 10): Promise<ReconSummary> {
  const counts = await selectRows<{ status: string; n: string }>(client, `SELECT toString(status) AS status, count() AS n FROM ${db}.recon_discrepancies FINAL GROUP BY status ORDER BY status`);
  const open = await selectRows<{ name: string; type: string; n: string }>(client,
    `SELECT name, toString(type) AS type, count() AS n FROM ${db}.recon_discrepancies FINAL WHERE status = 'open' GROUP BY name, type ORDER BY name, type`);
  const runs = await selectRows<{ name: string; period: string; mode: string; status: string; finished_ms: string; new_discrepancies: string }>(client,
    `SELECT name, toString(period) AS period, toString(mode) AS mode, toString(status) AS status, toString(toUnixTimestamp64Milli(finished_at)) AS finished_ms, new_discrepancies
     FROM ${db}.recon_runs FINAL ORDER BY started_at DESC LIMIT {limit:UInt32}`, { limit });
  return {
    byStatus: Object.fromEntries(counts.map((c) => [c.status, Number(c.n)])),
    open: open.map((o) => ({ name: o.name, type: o.type, count: Number(o.n) })),
    lastRuns: runs.map((r) => ({ name: r.name, period: r.period, mode: r.mode, status: r.status, finishedAt: Number(r.finished_ms), newDiscrepancies: Number(r.new_discrepancies) })),
  };
}
