import type { ClickHouseClient } from '@clickhouse/client';
import type { JetStreamClient } from '@nats-io/jetstream';
import { BASE_SETTINGS } from '../clickhouse/client.ts';
import { alertId, alertMessage } from '../core/alert-kinds.ts';
import type { ReconciliationConfig } from '../core/config.ts';
import type { Clock } from '../core/time.ts';
import { publishAlert } from '../nats/alert-publish.ts';
import { insertActions } from '../sinks/clickhouse/recon-tables.ts';
import { insertOrFile } from '../sinks/clickhouse/refused-rows.ts';
import type { Claims } from './claims.ts';
import type { DiscrepancyType } from './logic/types.ts';
import { reconMetrics } from './metrics.ts';

export type ReconAlert = {
  id: string;
  kind: 'ReconDiscrepancies';
  reconciliation: string;
  period: string;
  discrepancies: number;
  threshold: number;
  byType: Partial<Record<DiscrepancyType, number>>;
  at: number;
};

/**
 * Raises `alerts.recon.<name>` when the period holds more findings (any status) than the
 * threshold: one alert per reconciliation and period, its id the msgID, and a claim keeps
 * it once beyond the dedup window. Returns the alert when this call raised it.
 */
export async function alertIfOver(
  ctx: { recon: ReconciliationConfig; clickhouse: ClickHouseClient; db: string; js: JetStreamClient; claims: Claims; clock: Clock; actor: string },
  period: string,
): Promise<ReconAlert | undefined> {
  const { recon, clickhouse, db, js, claims, clock } = ctx;
  const result = await clickhouse.query({
    query: `SELECT type, count() AS n FROM ${db}.recon_discrepancies FINAL WHERE name = {name:String} AND period = {period:Date} GROUP BY type`,
    query_params: { name: recon.name, period },
    format: 'JSONEachRow',
    clickhouse_settings: BASE_SETTINGS,
  });
  const rows = await result.json<{ type: DiscrepancyType; n: string }>();
  const total = rows.reduce((n, r) => n + Number(r.n), 0);
  if (total <= recon.alert.threshold) return undefined;
  const alert: ReconAlert = {
    id: alertId('ReconDiscrepancies', { reconciliation: recon.name, period }),
    kind: 'ReconDiscrepancies',
    reconciliation: recon.name,
    period,
    discrepancies: total,
    threshold: recon.alert.threshold,
    byType: Object.fromEntries(rows.map((r) => [r.type, Number(r.n)])),
    at: clock.now(),
  };
  const message = alertMessage(alert);
  const { ran } = await claims.once(`alert.${alert.id}`, async () => {
    await publishAlert(js, message);
  });
  if (!ran) return undefined;
  reconMetrics.actions(recon.name, 'alerted');
  const audit = [{ name: recon.name, period, discrepancy_id: alert.id, action: 'alerted' as const, at: alert.at, actor: ctx.actor, subject: message.subject, msg_id: message.msgId, detail: JSON.stringify(alert.byType) }];
  // the alert is out and claimed: an audit row ClickHouse refuses is filed, not retried (nor the alert held back)
  await insertOrFile(js, 'recon_actions', audit, (part) => insertActions(clickhouse, db, part), clock.now());
  return alert;
}
