import { BUCKETS } from '../nats/buckets.ts';

/**
 * Saga traffic lives in one stream, `SAGAS` on `saga.>`:
 * - `saga.cmd.<service>.<command>`: commands and compensations, consumed by services;
 * - `saga.in.trigger.<saga>`: what starts a saga, on a durable of its own;
 * - `saga.in.active.<saga>.reply|tick|control`: replies, passed deadlines and operator
 *   decisions for sagas under way, on another durable, under one prefix because a 2.9
 *   consumer has one filter and a deadline must stay behind replies stored before it.
 * Two durables keep a burst of new sagas from queueing in front of the replies of
 * running ones (whose steps would then time out). Each saga's log is a key of the
 * `tidemark_sagas` KV bucket.
 */
export const SAGA_STREAM = 'SAGAS';
export const SAGA_SUBJECTS = ['saga.>'];
export const COMMAND_PREFIX = 'saga.cmd.';
export const TRIGGER_FILTER = 'saga.in.trigger.>';
export const ACTIVE_FILTER = 'saga.in.active.>';

export const SAGA_BUCKET = BUCKETS.sagas;
/** The stream behind the KV bucket: the saga log, which the ClickHouse projector consumes. */
export const SAGA_LOG_STREAM = `KV_${SAGA_BUCKET}`;

export const SAGA_CONSUMERS = {
  triggers: { stream: SAGA_STREAM, durable: 'saga-triggers', filter: TRIGGER_FILTER },
  inputs: { stream: SAGA_STREAM, durable: 'saga-inputs', filter: ACTIVE_FILTER },
  projector: { stream: SAGA_LOG_STREAM, durable: 'saga-projector', filter: `$KV.${SAGA_BUCKET}.>` },
} as const;

export const triggerSubject = (saga: string): string => `saga.in.trigger.${saga}`;
export const replySubject = (saga: string): string => `saga.in.active.${saga}.reply`;
export const controlSubject = (saga: string): string => `saga.in.active.${saga}.control`;
export const tickSubject = (saga: string): string => `saga.in.active.${saga}.tick`;

const ACTIVE_KINDS = ['reply', 'control', 'tick'] as const;
export type InputKind = 'trigger' | (typeof ACTIVE_KINDS)[number];

/** `saga.in.trigger.<saga>` or `saga.in.active.<saga>.<kind>` → its parts, or null for anything else. */
export function parseInputSubject(subject: string): { kind: InputKind; saga: string } | null {
  const [a, b, family, saga, kind, ...rest] = subject.split('.');
  if (a !== 'saga' || b !== 'in' || !saga || rest.length) return null;
  if (family === 'trigger') return kind === undefined ? { kind: 'trigger', saga } : null;
  if (family !== 'active') return null;
  return ACTIVE_KINDS.includes(kind as (typeof ACTIVE_KINDS)[number]) ? { kind: kind as InputKind, saga } : null;
}

const SAFE_ID = /^[A-Za-z0-9_-]{1,200}$/;

/**
 * `<saga>.<trigger id>`, usable as a KV key. An id with other characters is carried
 * as `=` + base64url, which no plain id can collide with (plain ids have no `=`).
 */
export const sagaIdOf = (saga: string, triggerId: string): string =>
  `${saga}.${SAFE_ID.test(triggerId) ? triggerId : `=${Buffer.from(triggerId).toString('base64url')}`}`;

export const sagaNameOf = (sagaId: string): string => sagaId.split('.')[0] ?? '';
