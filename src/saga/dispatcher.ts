import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { Effects } from './effects.ts';
import { fold } from './logic/evolve.ts';
import { startPump } from './pump.ts';
import { decodeRecord, type SagaRecord } from './store.ts';
import { SAGA_CONSUMERS } from './subjects.ts';

export type Dispatcher = { stats: { revisions: number; skipped: number }; stop: () => Promise<void> };

/**
 * Sends what the saga log says is owed: a durable pull consumer on the log's stream,
 * so every stored revision is looked at at least once, by one instance, even when the
 * orchestrator that wrote it died before sending. Revisions this process has already
 * sent are acked unread.
 */
export async function startDispatcher(options: { js: JetStreamClient; effects: Effects; logger: Logger; concurrency: number }): Promise<Dispatcher> {
  const { js, effects, logger } = options;
  const stats = { revisions: 0, skipped: 0 };

  const handle = async (msg: JsMsg): Promise<void> => {
    // the log stream's sequence is the KV revision
    if (effects.takeSent(msg.seq)) {
      stats.skipped++;
      return;
    }
    const operation = msg.headers?.get('KV-Operation');
    if (operation === 'DEL' || operation === 'PURGE') return;
    let record: SagaRecord;
    try {
      record = decodeRecord(msg.data);
    } catch {
      logger.error({ subject: msg.subject, seq: msg.seq }, 'a saga log entry is not JSON; skipped');
      return;
    }
    await effects.send(record, fold(record.events));
  };

  const consumer = await startPump({
    js,
    stream: SAGA_CONSUMERS.dispatcher.stream,
    durable: SAGA_CONSUMERS.dispatcher.durable,
    concurrency: options.concurrency,
    logger,
    handle: async (msg) => {
      stats.revisions++;
      try {
        await handle(msg);
        msg.ack();
      } catch (err) {
        logger.warn({ err, subject: msg.subject }, 'saga effects not sent; the revision will be redelivered');
        try {
          msg.nak(1_000);
        } catch {
          // the connection is gone: the server redelivers after ack_wait
        }
      }
    },
  });

  return { stats, stop: consumer.stop };
}
