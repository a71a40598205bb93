import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from 'pino';
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { dlqRecord, publishToDlq } from '../nats/dlq.ts';
import { type BatchHandler } from '../nats/batch-consumer.ts';
import { headerRecord, storedAtMs } from '../nats/js-msg.ts';
import { insertIsolating } from '../sinks/clickhouse/isolating-insert.ts';
import { alertRow, insertAlerts } from '../sinks/clickhouse/alerts-table.ts';

export type AlertSinkDeps = {
  clickhouse: ClickHouseClient;
  /** where an alert the table refuses is filed */
  js: JetStreamClient;
  db: string;
  logger: Logger;
};

/**
 * Consumer of ALERTS (shared durable `alert-sink`): every alert published there, the
 * monitor's and the processor's, the saga orchestrator's and the reconciler's, goes into
 * the `alerts` table; only then is it acked. Webhooks have durables of their own
 * (webhook-sink.ts), so a dead receiver holds back neither this table nor another receiver.
 */
export function createAlertSink(deps: AlertSinkDeps): BatchHandler {
  return async (msgs: JsMsg[]) => {
    const rows = msgs.map((msg) => alertRow({ subject: msg.subject, seq: msg.seq, storedAt: storedAtMs(msg), data: msg.data }));
    // a message whose row ClickHouse refuses is filed in the DLQ and acked, not retried forever
    const refused = await insertIsolating(rows, (batch) => insertAlerts(deps.clickhouse, deps.db, batch));
    for (const { row, error } of refused) {
      const msg = msgs[rows.indexOf(row)]!;
      const record = dlqRecord({ code: 'REFUSED_BY_SINK', reason: `ClickHouse refused the alert row: ${error}` }, msg.data, msg.subject, headerRecord(msg), { stream: 'ALERTS', seq: msg.seq }, row.stored_at);
      await publishToDlq(deps.js, record, `ALERTS-${msg.seq}`);
      deps.logger.warn({ alert: row.id, seq: msg.seq, error: error.slice(0, 300) }, 'alert refused by ClickHouse; filed in the DLQ');
    }
    for (const msg of msgs) msg.ack();
  };
}
