import type { ClickHouseClient } from '@clickhouse/client';
import type { JetStreamClient } from '@nats-io/jetstream';
import { BASE_SETTINGS } from '../clickhouse/client.ts';
import type { ReconciliationConfig } from '../core/config.ts';
import { natsMsgId } from '../core/identity.ts';
import type { Clock } from '../core/time.ts';
import {
  discrepancyRow,
  insertActions,
  insertDiscrepancies,
  withStatus,
  type ActionRow,
  type DiscrepancyRow,
  type DiscrepancyStatus,
  type ReconMode,
} from '../sinks/clickhouse/recon-tables.ts';
import type { Claims } from './claims.ts';
import { manualSubject } from './feeds.ts';
import { correctionFor, policyFor } from './logic/correction.ts';
import type { Discrepancy } from './logic/types.ts';
import { insertOrFile } from '../sinks/clickhouse/refused-rows.ts';
import { reconMetrics } from './metrics.ts';

export type ActionContext = {
  recon: ReconciliationConfig;
  clickhouse: ClickHouseClient;
  db: string;
  js: JetStreamClient;
  claims: Claims;
  clock: Clock;
  /** who acts, for the audit trail (`instanceId('stream')`, `instanceId('batch')`) */
  actor: string;
};

export type ActionOutcome = { stored: number; fresh: number; healed: number; queued: number };

/** Ids per status lookup: keeps the query text (its IN list) small for runs with very many findings. */
const LOOKUP_CHUNK = 10_000;
/** Heals and queue entries in flight at once: each is a few KV round trips and a publish. */
const CONCURRENCY = 32;

/** Current status of known findings (FINAL: the highest-ranked row of each id). */
async function knownStatuses(clickhouse: ClickHouseClient, db: string, name: string, ids: string[]): Promise<Map<string, DiscrepancyStatus>> {
  const known = new Map<string, DiscrepancyStatus>();
  for (let i = 0; i < ids.length; i += LOOKUP_CHUNK) {
    const result = await clickhouse.query({
      query: `SELECT id, status FROM ${db}.recon_discrepancies FINAL WHERE name = {name:String} AND id IN {ids:Array(String)}`,
      query_params: { name, ids: ids.slice(i, i + LOOKUP_CHUNK) },
      format: 'JSONEachRow',
      clickhouse_settings: BASE_SETTINGS,
    });
    for (const r of await result.json<{ id: string; status: DiscrepancyStatus }>()) known.set(r.id, r.status);
  }
  return known;
}

async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Stores findings and applies each one's policy once:
 * - every finding is (re)written as `open`; a healed or acknowledged one keeps its
 *   status because a status row outranks an open row;
 * - `publish`: the correction event goes to `ingest.<source>.<type>` under a claim, and
 *   the finding becomes `healed`; a finding without an exact correction goes to the
 *   manual queue instead;
 * - `manual`: one message on `recon.manual.<name>`, the finding stays open until acked.
 * Every action leaves an audit row. Safe to call again with the same findings.
 */
export async function actOn(ctx: ActionContext, findings: Discrepancy[], run: { mode: ReconMode; runId: string }): Promise<ActionOutcome> {
  const { recon, clickhouse, db, js, claims, clock, actor } = ctx;
  const known = await knownStatuses(clickhouse, db, recon.name, findings.map((d) => d.id));
  const at = clock.now();
  const rows = findings.map((d) => discrepancyRow(d, { ...run, action: policyFor(recon, d), at }));
  // a finding ClickHouse refuses is filed in the DLQ, not retried with its feed messages for ever
  await insertOrFile(js, 'recon_discrepancies', rows, (part) => insertDiscrepancies(clickhouse, db, part), at);

  const fresh = findings.filter((d) => !known.has(d.id));
  for (const d of fresh) reconMetrics.findings(recon.name, run.mode, d.type);
  const outcome: ActionOutcome = { stored: rows.length, fresh: fresh.length, healed: 0, queued: 0 };
  const healedRows: DiscrepancyRow[] = [];
  const audit: ActionRow[] = [];
  const actionRow = (d: Discrepancy, action: ActionRow['action'], subject: string, msgId: string, detail: string): ActionRow => ({
    name: recon.name, period: d.period, discrepancy_id: d.id, action, at: clock.now(), actor, subject, msg_id: msgId, detail,
  });

  const pending = findings.map((d, i) => ({ d, row: rows[i]! })).filter(({ d }) => (known.get(d.id) ?? 'open') === 'open');
  await inParallel(pending, CONCURRENCY, async ({ d, row }) => {
    const correction = policyFor(recon, d) === 'publish' ? correctionFor(recon, d) : undefined;
    if (correction !== undefined && 'event' in correction) {
      const { subject, event } = correction;
      const { ran } = await claims.once(`heal.${d.id}`, async () => {
        // INGEST's dedup key is the event's identity (source, id), as the gateways' own
        await js.publish(subject, JSON.stringify(event), { msgID: natsMsgId(event.source, event.id) });
      });
      if (ran) {
        outcome.healed++;
        reconMetrics.actions(recon.name, 'healed');
      }
      // written again on a retry after a crash: the audit key (finding, action) collapses repeats
      healedRows.push(withStatus(row, 'healed', clock.now(), `correction ${event.id}`));
      audit.push(actionRow(d, 'healed', subject, event.id, JSON.stringify(event.data)));
      return;
    }
    const reason = correction === undefined ? 'policy manual' : correction.reason;
    const msgId = `manual-${d.id}`;
    const { ran } = await claims.once(`manual.${d.id}`, async () => {
      await js.publish(manualSubject(recon.name), JSON.stringify({ ...d, reason }), { msgID: msgId });
    });
    if (ran) {
      outcome.queued++;
      reconMetrics.actions(recon.name, 'queued');
    }
    audit.push(actionRow(d, 'queued', manualSubject(recon.name), msgId, reason));
  });
  await insertOrFile(js, 'recon_discrepancies', healedRows, (part) => insertDiscrepancies(clickhouse, db, part), clock.now());
  await insertOrFile(js, 'recon_actions', audit, (part) => insertActions(clickhouse, db, part), clock.now());
  return outcome;
}
