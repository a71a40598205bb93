import type { ClickHouseClient } from '@clickhouse/client';
import type { JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { redactWebhookUrl } from '../core/secrets.ts';
import { type BatchHandler } from '../nats/batch-consumer.ts';
import { deliveryCount, storedAtMs } from '../nats/js-msg.ts';
import { alertRow } from '../sinks/clickhouse/alerts-table.ts';
import { insertDeliveries, type AlertDeliveryRow } from '../sinks/clickhouse/alert-deliveries-table.ts';
import { deliverWebhook, redeliveryDelay, WebhookRefusedError, type WebhookRoute } from '../sinks/webhooks.ts';
import { wellFormed } from '../core/field-limits.ts';
import type { MonitorMetrics } from './metrics.ts';

export type WebhookSinkDeps = {
  route: WebhookRoute;
  clickhouse: ClickHouseClient;
  db: string;
  metrics: MonitorMetrics;
  logger: Logger;
  /** aborts rounds at shutdown; the alert comes back to whichever instance runs next */
  signal: AbortSignal;
  /** wall-clock time: retryFor is counted from when the alert was stored on ALERTS */
  now: () => number;
};

type Verdict = { msg: JsMsg; then: 'ack' } | { msg: JsMsg; then: 'nak'; delayMs: number } | { msg: JsMsg; then: 'record'; row: AlertDeliveryRow };

/** When a round is cut short by shutdown or the outcome cannot be written, the alert comes back this soon. */
const SOON_MS = 1_000;

/** How often the messages of a batch in progress are reported in progress: well inside any ackWait. */
const KEEP_ALIVE_MS = 1_000;

/**
 * Consumer of one webhook's durable on ALERTS. Each message is one delivery round (a few
 * quick POSTs, `maxAttempts`); an alert the receiver did not take goes back on ALERTS with
 * nak(delay) — the wait lives in the server, so rounds go on across restarts and
 * instances — until `retryFor` after it was stored. Then, or when the receiver refuses for
 * good, the alert is written to `alert_deliveries` and counted before its ack: never acked
 * in silence. After a 2xx it is acked at once and never sent there again.
 */
export function createWebhookSink(deps: WebhookSinkDeps): BatchHandler {
  const { route, logger } = deps;
  const url = redactWebhookUrl(route.url);
  const round = async (msg: JsMsg): Promise<Verdict> => {
    const storedAt = storedAtMs(msg);
    const alert = alertRow({ subject: msg.subject, seq: msg.seq, storedAt, data: msg.data });
    if (!route.accepts(alert)) return { msg, then: 'ack' };
    const rounds = deliveryCount(msg);
    const outcome = (o: AlertDeliveryRow['outcome'], status: number, reason: string): Verdict => ({
      msg,
      then: 'record',
      row: { alert_id: alert.id, webhook: route.durable, url, outcome: o, rounds, status, reason: wellFormed(reason.slice(0, 1_000)), stored_at: storedAt, at: deps.now() },
    });
    try {
      const report = await deliverWebhook(route, { id: alert.id, body: alert.payload }, {
        signal: deps.signal,
        onRetry: (attempt, reason) => {
          deps.metrics.webhook('retried');
          logger.warn({ url, alert: alert.id, round: rounds, attempt, reason }, 'webhook failed; retrying');
          msg.working();
        },
      });
      deps.metrics.webhook('delivered');
      return outcome('delivered', report.status, '');
    } catch (err) {
      if (deps.signal.aborted) return { msg, then: 'nak', delayMs: SOON_MS };
      const reason = (err as Error).message;
      if (err instanceof WebhookRefusedError) {
        deps.metrics.webhook('failed');
        logger.error({ url, alert: alert.id, reason }, 'webhook refused the alert; marked refused');
        return outcome('refused', err.status, reason);
      }
      const left = storedAt + route.retryFor - deps.now();
      if (left <= 0) {
        deps.metrics.webhook('undelivered');
        logger.error({ url, alert: alert.id, rounds, reason }, 'webhook did not take the alert within retryFor; marked undelivered');
        return outcome('undelivered', 0, reason);
      }
      const delayMs = redeliveryDelay(route, rounds, left, Math.random());
      deps.metrics.webhook('deferred');
      logger.warn({ url, alert: alert.id, rounds, nextInMs: delayMs, reason }, 'webhook did not take the alert; next round later');
      return { msg, then: 'nak', delayMs };
    }
  };

  return async (msgs) => {
    // the batch is acked when its slowest round and the outcome insert are done: until then
    // every message of it is kept alive, or a busy instance past ackWait gets a copy POSTed again
    const keepAlive = setInterval(() => {
      for (const msg of msgs) msg.working();
    }, KEEP_ALIVE_MS);
    let written = true;
    let verdicts: Verdict[];
    try {
      verdicts = await Promise.all(msgs.map(round));
      const rows = verdicts.flatMap((v) => (v.then === 'record' ? [v.row] : []));
      await insertDeliveries(deps.clickhouse, deps.db, rows).catch((err: unknown) => {
        written = false;
        logger.error({ err, url }, 'webhook outcomes not written; undelivered alerts come back');
      });
    } finally {
      clearInterval(keepAlive);
    }
    for (const v of verdicts) {
      if (v.then === 'nak') v.msg.nak(v.delayMs);
      // a delivered alert is acked even so: sending it again would not make the row more true
      else if (v.then === 'record' && !written && v.row.outcome !== 'delivered') v.msg.nak(SOON_MS);
      else v.msg.ack();
    }
  };
}
