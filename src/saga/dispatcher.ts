import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { Clock } from '../core/time.ts';
import { runBatchConsumer, type RunningConsumer } from '../nats/batch-consumer.ts';
import { publishParkedAlert } from './alerts.ts';
import { fold } from './logic/evolve.ts';
import type { SagaState } from './logic/types.ts';
import type { SagaMetrics } from './metrics.ts';
import { decodeRecord, type SagaRecord } from './store.ts';
import { publishCommand } from './commands.ts';
import { SAGA_CONSUMERS } from './subjects.ts';

export type DispatcherStats = { revisions: number; commands: number; alerts: number };
export type Dispatcher = { stats: DispatcherStats; stop: () => Promise<void> };

/** The revision that decided to start compensating, and sent the first undo with it. */
function startsCompensation(record: SagaRecord): boolean {
  const [before, last] = record.events.slice(-2);
  return before?.type === 'CompensationStarted' && last?.type === 'CommandDispatched' && last.kind === 'undo';
}

/**
 * Sends what the saga log says is owed: a durable pull consumer on the log's stream,
 * so every stored revision is looked at at least once, by one instance. Each effect is
 * derived from the revision alone, with a deterministic Nats-Msg-Id, so a revision
 * seen twice sends nothing twice. A command past its deadline is not sent: the timer
 * has given up on it, and a late copy could land outside the dedup window.
 */
export async function startDispatcher(options: { js: JetStreamClient; clock: Clock; logger: Logger; metrics: SagaMetrics; batchSize: number }): Promise<Dispatcher> {
  const { js, clock, logger, metrics } = options;
  const stats: DispatcherStats = { revisions: 0, commands: 0, alerts: 0 };

  const effects = async (record: SagaRecord, state: SagaState): Promise<void> => {
    const command = state.inFlight;
    if (command && clock.now() < command.deadline) {
      await publishCommand(js, state, command);
      stats.commands++;
      if (startsCompensation(record) && state.failure) metrics.compensationStart(state.name, (clock.now() - state.failure.failedAt) / 1000);
    }
    if (state.status === 'parked' && state.parked) {
      await publishParkedAlert(js, state);
      stats.alerts++;
    }
  };

  const handle = async (msg: JsMsg): Promise<void> => {
    const operation = msg.headers?.get('KV-Operation');
    if (operation === 'DEL' || operation === 'PURGE') return;
    let record: SagaRecord;
    try {
      record = decodeRecord(msg.data);
    } catch {
      logger.error({ subject: msg.subject, seq: msg.seq }, 'a saga log entry is not JSON; skipped');
      return;
    }
    await effects(record, fold(record.events));
  };

  const consumer: RunningConsumer = await runBatchConsumer({
    js,
    stream: SAGA_CONSUMERS.dispatcher.stream,
    durable: SAGA_CONSUMERS.dispatcher.durable,
    batchSize: options.batchSize,
    logger,
    handler: async (msgs) => {
      await Promise.all(
        msgs.map(async (msg) => {
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
        }),
      );
    },
  });

  return { stats, stop: consumer.stop };
}
