import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from 'pino';
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { dlqRecord, publishToDlq } from '../ingest/dlq.ts';
import { headerRecord, storedAtMs, type BatchHandler } from '../nats/batch-consumer.ts';
import { insertIsolating } from '../sinks/clickhouse/isolating-insert.ts';
import { alertRow, insertAlerts } from '../sinks/clickhouse/alerts-table.ts';
import { redactWebhookUrl } from '../core/secrets.ts';
import { deliverWebhook, type WebhookRoute } from '../sinks/webhooks.ts';
import type { MonitorMetrics } from './metrics.ts';

export type AlertSinkDeps = {
  clickhouse: ClickHouseClient;
  /** where an alert the table refuses is filed */
  js: JetStreamClient;
  db: string;
  routes: WebhookRoute[];
  metrics: MonitorMetrics;
  logger: Logger;
  /** aborts webhook back-off waits at shutdown */
  signal: AbortSignal;
};

/**
 * Consumer of ALERTS (shared durable `alert-sink`): every alert published there, the
 * monitor's and the processor's `ReportAmended`, goes into the `alerts` table, then to
 * each webhook whose filters accept it; only then is it acked. A webhook that stays
 * down past its retries is logged and counted, not retried forever: one dead receiver
 * must not hold every other alert back.
 */
export function createAlertSink(deps: AlertSinkDeps): BatchHandler {
  return async (msgs: JsMsg[]) => {
    const rows = msgs.map((msg) => alertRow({ subject: msg.subject, seq: msg.seq, storedAt: storedAtMs(msg), data: msg.data }));
    // a message whose row ClickHouse refuses is filed in the DLQ and acked, not retried forever
    const refused = await insertIsolating(rows, (batch) => insertAlerts(deps.clickhouse, deps.db, batch));
    const refusedRows = new Set(refused.map((r) => r.row));
    for (const { row, error } of refused) {
      const msg = msgs[rows.indexOf(row)]!;
      const record = dlqRecord({ code: 'REFUSED_BY_SINK', reason: `ClickHouse refused the alert row: ${error}` }, msg.data, msg.subject, headerRecord(msg), { stream: 'ALERTS', seq: msg.seq }, row.stored_at);
      await publishToDlq(deps.js, record, `ALERTS-${msg.seq}`);
      deps.logger.warn({ alert: row.id, seq: msg.seq, error: error.slice(0, 300) }, 'alert refused by ClickHouse; filed in the DLQ');
    }
    const deliveries: Array<Promise<void>> = [];
    rows.forEach((row, i) => {
      if (refusedRows.has(row)) return;
      for (const route of deps.routes) {
        if (!route.accepts(row)) continue;
        const msg = msgs[i]!;
        deliveries.push(
          deliverWebhook(route, { id: row.id, body: row.payload }, {
            signal: deps.signal,
            onRetry: (attempt, reason) => {
              deps.metrics.webhook('retried');
              deps.logger.warn({ url: redactWebhookUrl(route.url), alert: row.id, attempt, reason }, 'webhook failed; retrying');
              msg.working();
            },
          }).then(
            () => deps.metrics.webhook('delivered'),
            (err: unknown) => {
              deps.metrics.webhook('failed');
              deps.logger.error({ err, url: redactWebhookUrl(route.url), alert: row.id }, 'webhook delivery gave up');
            },
          ),
        );
      }
    });
    await Promise.all(deliveries);
    for (const msg of msgs) msg.ack();
  };
}
