import type { ClickHouseClient } from '@clickhouse/client';
import type { JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { storedAtMs, type BatchHandler } from '../nats/batch-consumer.ts';
import { alertRow, insertAlerts } from '../sinks/clickhouse/alerts-table.ts';
import { redactWebhookUrl } from '../core/secrets.ts';
import { deliverWebhook, type WebhookRoute } from '../sinks/webhooks.ts';
import type { MonitorMetrics } from './metrics.ts';

export type AlertSinkDeps = {
  clickhouse: ClickHouseClient;
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
    await insertAlerts(deps.clickhouse, deps.db, rows);
    const deliveries: Array<Promise<void>> = [];
    rows.forEach((row, i) => {
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
