import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { CommandBody, type SagaCommand } from './commands.ts';
import type { ReplyBody } from './inputs.ts';
import { retryTransient } from '../nats/retry.ts';

/**
 * Helpers for the services a saga commands. The rule they follow: every message a
 * service sends has an id derived from what caused it, so sending it again (after a
 * crash, a redelivery, or from an outbox relay) is dropped by JetStream's dedup.
 */

export type { SagaCommand };

export function parseCommand(data: Uint8Array): SagaCommand {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(data));
  } catch {
    throw new TidemarkError(ErrorCodes.SAGA_MESSAGE_INVALID, 'a saga command is not JSON');
  }
  const parsed = CommandBody.safeParse(raw);
  if (!parsed.success) throw new TidemarkError(ErrorCodes.SAGA_MESSAGE_INVALID, `not a saga command: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

export type OutboxMessage = { id: string; subject: string; body: unknown };

/** The reply to a command as an outbox message: one reply per command, whatever the outcome. */
export function replyMessage(command: SagaCommand, type: string, data: unknown = {}): OutboxMessage {
  const body: ReplyBody = { sagaId: command.sagaId, step: command.step, kind: command.kind, attempt: command.attempt, type, data };
  return { id: `${command.commandId}:reply`, subject: command.replyTo, body };
}

/** Publishes once per id within the stream's duplicate window; `duplicate` on the ack says it was already there. */
export const publishOnce = (js: JetStreamClient, message: OutboxMessage): Promise<PubAck> =>
  retryTransient(() => js.publish(message.subject, JSON.stringify(message.body), { msgID: message.id }));

export const reply = (js: JetStreamClient, command: SagaCommand, type: string, data?: unknown): Promise<PubAck> => publishOnce(js, replyMessage(command, type, data));

/** The outbox table of a service: rows written in the same transaction as its business change. */
export type OutboxStore = {
  pending: (limit: number) => Promise<OutboxMessage[]>;
  markSent: (ids: string[]) => Promise<void>;
};

/**
 * Publishes what the outbox holds and marks it sent. A crash between the two sends
 * the rows again on the next run, which the deterministic ids make harmless.
 */
export async function relayOutbox(js: JetStreamClient, store: OutboxStore, limit = 500): Promise<number> {
  const rows = await store.pending(limit);
  await Promise.all(rows.map((row) => publishOnce(js, row)));
  if (rows.length) await store.markSent(rows.map((r) => r.id));
  return rows.length;
}
