import { AckPolicy, DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { ErrorCodes, isTidemarkError } from '../core/errors.ts';
import { terminateToDlq } from '../nats/dlq.ts';
import { runBatchConsumer } from '../nats/batch-consumer.ts';
import { parseCommand, reply, type SagaCommand } from './outbox.ts';
import { SAGA_STREAM } from './subjects.ts';

/** What a service answers: a reply type of the step (success or failure) and its data; null sends nothing. */
export type ServiceAnswer = { type: string; data?: unknown } | null;
export type CommandHandler = (command: SagaCommand) => Promise<ServiceAnswer>;

export type ServiceOptions = {
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** the durable's name, shared by every instance of the service */
  name: string;
  /** e.g. `saga.cmd.payment.>` */
  filter: string;
  handle: CommandHandler;
  logger: Logger;
  ackWaitMs?: number;
};

/**
 * A service's side of a saga: a durable pull consumer on its command subjects that
 * runs the handler and sends the answer with an id derived from the command, then
 * acks. A crash before the ack redelivers the command; the handler must therefore be
 * idempotent on `command.idempotencyKey`, and the repeated reply is deduplicated.
 */
export async function serveSagaCommands(options: ServiceOptions): Promise<{ stop: () => Promise<void> }> {
  const { js, jsm, logger } = options;
  const ackWait = nanos(options.ackWaitMs ?? 30_000);
  const existing = await jsm.consumers.info(SAGA_STREAM, options.name).catch(() => null);
  if (!existing) {
    await jsm.consumers.add(SAGA_STREAM, { durable_name: options.name, filter_subject: options.filter, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: ackWait, max_deliver: -1 });
  } else if (existing.config.ack_wait !== ackWait) {
    await jsm.consumers.update(SAGA_STREAM, options.name, { ack_wait: ackWait });
  }
  return runBatchConsumer({
    js,
    stream: SAGA_STREAM,
    durable: options.name,
    batchSize: 256,
    logger,
    handler: async (msgs) => {
      await Promise.all(
        msgs.map(async (msg) => {
          try {
            const command = parseCommand(msg.data);
            const answer = await options.handle(command);
            if (answer) await reply(js, command, answer.type, answer.data);
            msg.ack();
          } catch (err) {
            if (isTidemarkError(err, ErrorCodes.SAGA_MESSAGE_INVALID)) {
              logger.error({ err: err.message, subject: msg.subject, seq: msg.seq }, 'not a saga command; filed in the DLQ');
              await terminateToDlq(js, msg, `not a saga command: ${err.message}`);
              return;
            }
            logger.warn({ err, subject: msg.subject }, 'command not handled; it will be redelivered');
            msg.nak(1_000);
          }
        }),
      );
    },
  });
}
