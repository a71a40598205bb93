import { z } from 'zod';
import type { BatchPublisher } from '../nats/batch-publisher.ts';
import { idempotencyKeyOf } from './logic/decide.ts';
import type { InFlight, SagaState } from './logic/types.ts';
import { replySubject } from './subjects.ts';
import { retryTransient } from '../nats/retry.ts';

/** What a service receives on `saga.cmd.>`: the payload plus everything needed to answer. */
export const CommandBody = z.object({
  commandId: z.string(),
  /** the same for every attempt of a step: dedup the work on this */
  idempotencyKey: z.string(),
  sagaId: z.string(),
  saga: z.string(),
  step: z.string(),
  kind: z.enum(['do', 'undo']),
  attempt: z.number().int().positive(),
  replyTo: z.string(),
  /** epoch ms after which the orchestrator no longer waits for this attempt */
  deadline: z.number(),
  payload: z.unknown(),
});
export type SagaCommand = z.infer<typeof CommandBody>;

export function commandBody(state: SagaState, command: InFlight): SagaCommand {
  return {
    commandId: command.commandId,
    idempotencyKey: idempotencyKeyOf(state.sagaId, command.step, command.kind),
    sagaId: state.sagaId,
    saga: state.name,
    step: command.step,
    kind: command.kind,
    attempt: command.attempt,
    replyTo: replySubject(state.name),
    deadline: command.deadline,
    payload: command.payload,
  };
}

/** A JetStream publish with a message id, resolving once stored (`duplicate`: it was already). */
export type SagaPublish = (subject: string, data: string, msgId: string) => Promise<{ duplicate: boolean }>;

export const sagaPublish =
  (publisher: BatchPublisher): SagaPublish =>
  (subject, data, msgId) =>
    retryTransient(() => publisher.publishOne({ subject, data, msgId }));

export const publishCommand = (publish: SagaPublish, state: SagaState, command: InFlight): Promise<{ duplicate: boolean }> =>
  publish(command.subject, JSON.stringify(commandBody(state, command)), command.commandId);
