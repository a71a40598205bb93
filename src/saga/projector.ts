import type { ClickHouseClient } from '@clickhouse/client';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { runBatchConsumer } from '../nats/batch-consumer.ts';
import { insertSagaRows, sagaRows, type SagaRow, type SagaStepRow } from './projection-tables.ts';
import { insertOrFile } from '../sinks/clickhouse/refused-rows.ts';
import { decodeRecord, type SagaRecord } from './store.ts';
import { SAGA_CONSUMERS } from './subjects.ts';

export type Projector = { stats: { revisions: number; inserts: number; filed: number }; stop: () => Promise<void> };

/**
 * Keeps `sagas` and `saga_steps` in step with the saga log: a durable pull consumer
 * on the log's stream that acks a batch only once its rows are inserted. Each
 * revision carries the saga's whole history, so writing the newest one per saga in a
 * batch is enough, and a revision skipped by the log's history limit loses nothing.
 * A row ClickHouse refuses goes to the DLQ (`REFUSED_BY_SINK`) and the rest is stored.
 */
export async function startProjector(options: { js: JetStreamClient; clickhouse: ClickHouseClient; db: string; logger: Logger; batchSize?: number }): Promise<Projector> {
  const { js, clickhouse, db, logger } = options;
  const stats = { revisions: 0, inserts: 0, filed: 0 };
  const consumer = await runBatchConsumer({
    js,
    stream: SAGA_CONSUMERS.projector.stream,
    durable: SAGA_CONSUMERS.projector.durable,
    batchSize: options.batchSize ?? 2_000,
    logger,
    retryDelayMs: 2_000,
    handler: async (msgs) => {
      const newest = new Map<string, SagaRecord>();
      for (const msg of msgs) {
        const operation = msg.headers?.get('KV-Operation');
        if (operation === 'DEL' || operation === 'PURGE') continue;
        try {
          const record = decodeRecord(msg.data);
          const seen = newest.get(record.sagaId);
          if (!seen || seen.events.length < record.events.length) newest.set(record.sagaId, record);
        } catch {
          logger.error({ subject: msg.subject, seq: msg.seq }, 'a saga log entry is not JSON; not projected');
        }
      }
      const sagas: SagaRow[] = [];
      const steps: SagaStepRow[] = [];
      for (const record of newest.values()) {
        const rows = sagaRows(record.events);
        sagas.push(rows.saga);
        steps.push(...rows.steps);
      }
      // a row ClickHouse refuses (a trigger id or reply text with a lone surrogate, say) is filed, not retried for ever
      const now = Date.now();
      stats.filed += await insertOrFile(js, 'sagas', sagas, (part) => insertSagaRows(clickhouse, db, { sagas: part, steps: [] }), now);
      stats.filed += await insertOrFile(js, 'saga_steps', steps, (part) => insertSagaRows(clickhouse, db, { sagas: [], steps: part }), now);
      for (const msg of msgs) msg.ack();
      stats.revisions += msgs.length;
      stats.inserts++;
    },
  });
  return { stats, stop: consumer.stop };
}
