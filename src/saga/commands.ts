import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { z } from 'zod';
import { idempotencyKeyOf } from './logic/decide.ts';
import type { InFlight, SagaState } from './logic/types.ts';
import { replySubject } from './subjects.ts';

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

export const publishCommand = (js: JetStreamClient, state: SagaState, command: InFlight): Promise<PubAck> =>
  js.publish(command.subject, JSON.stringify(commandBody(state, command)), { msgID: command.commandId });
