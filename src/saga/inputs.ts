import type { JsMsg } from '@nats-io/jetstream';
import { z } from 'zod';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { eventIdentity, idFromMsgId, idFromSequence, isReservedId, RESERVED_ID_PREFIX } from '../core/identity.ts';
import { storedAtMs } from '../nats/js-msg.ts';
import type { SagaInput } from './logic/types.ts';
import { parseInputSubject, sagaIdOf, sagaNameOf } from './subjects.ts';

/**
 * A trigger: `data` becomes the saga's input; (`source`, `id`) names the saga, as an
 * event's identity does (without `source`, `id` alone; without `id`, Nats-Msg-Id, else
 * the stream sequence, both in the namespace of generated ids no client may use).
 */
export const TriggerBody = z.object({ id: z.string().min(1).optional(), source: z.string().regex(/^[^.*>\s]+$/, 'one subject token').optional(), data: z.unknown().optional() });

/** What a service sends back for one command (the outbox helper builds it from the command). */
export const ReplyBody = z.object({
  sagaId: z.string().min(1),
  step: z.string().min(1),
  kind: z.enum(['do', 'undo']),
  attempt: z.number().int().positive(),
  type: z.string().min(1),
  data: z.unknown().optional(),
});
export type ReplyBody = z.infer<typeof ReplyBody>;

export const ControlBody = z.object({ sagaId: z.string().min(1), action: z.enum(['retry', 'abort']), reason: z.string().optional() });
export type ControlBody = z.infer<typeof ControlBody>;

/** A deadline of the saga passed, by the clock of the instance that noticed. */
export const TickBody = z.object({ sagaId: z.string().min(1), due: z.number() });
export type TickBody = z.infer<typeof TickBody>;

export type RoutedInput = { saga: string; sagaId: string; input: SagaInput };

const invalid = (msg: JsMsg, why: string) => new TidemarkError(ErrorCodes.SAGA_MESSAGE_INVALID, `${msg.subject} #${msg.seq}: ${why}`);

function body<T>(msg: JsMsg, schema: z.ZodType<T>): T {
  let raw: unknown;
  try {
    raw = msg.json();
  } catch {
    throw invalid(msg, 'not JSON');
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw invalid(msg, parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  return parsed.data;
}

function triggerIdOf(msg: JsMsg, trigger: z.infer<typeof TriggerBody>): string {
  if (trigger.id !== undefined && isReservedId(trigger.id)) throw invalid(msg, `id "${trigger.id}" starts with "${RESERVED_ID_PREFIX}", which only generated ids may`);
  const header = msg.headers?.get('Nats-Msg-Id');
  const id = trigger.id ?? (header ? idFromMsgId(header) : idFromSequence(msg.info.stream, msg.seq));
  return trigger.source === undefined ? id : eventIdentity(trigger.source, id);
}

/** Turns a message on `saga.in.>` into the saga it concerns and the input for `decide`; throws SAGA_MESSAGE_INVALID for anything unusable. */
export function routeMessage(msg: JsMsg, now: number): RoutedInput {
  const route = parseInputSubject(msg.subject);
  if (!route) throw invalid(msg, 'not a saga input subject');
  const { saga } = route;
  const owned = (sagaId: string) => {
    if (sagaNameOf(sagaId) !== saga) throw invalid(msg, `saga id ${sagaId} does not belong to ${saga}`);
    return sagaId;
  };
  switch (route.kind) {
    case 'trigger': {
      const trigger = body(msg, TriggerBody);
      const triggerId = triggerIdOf(msg, trigger);
      const sagaId = sagaIdOf(saga, triggerId);
      return { saga, sagaId, input: { type: 'Start', now, sagaId, triggerId, input: trigger.data ?? {} } };
    }
    case 'reply': {
      const reply = body(msg, ReplyBody);
      return {
        saga,
        sagaId: owned(reply.sagaId),
        input: { type: 'Reply', now, step: reply.step, kind: reply.kind, attempt: reply.attempt, eventType: reply.type, data: reply.data ?? null, storedAt: storedAtMs(msg) },
      };
    }
    case 'tick': {
      const tick = body(msg, TickBody);
      // the instance that published it saw the deadline pass; a slower clock here must not undo that
      return { saga, sagaId: owned(tick.sagaId), input: { type: 'Tick', now: Math.max(now, tick.due) } };
    }
    case 'control': {
      const control = body(msg, ControlBody);
      const input: SagaInput = control.action === 'retry' ? { type: 'Retry', now } : { type: 'Abort', now, reason: control.reason ?? 'aborted by an operator' };
      return { saga, sagaId: owned(control.sagaId), input };
    }
  }
}
