/**
 * Saga traffic lives in one stream, `SAGAS` on `saga.>`:
 * - `saga.cmd.<service>.<command>`: commands and compensations, consumed by services;
 * - `saga.in.trigger.<saga>`, `saga.in.reply.<saga>`, `saga.in.control.<saga>` and
 *   `saga.in.tick.<saga>` (a deadline passed): what the orchestrators consume, under one
 *   prefix because a 2.9 consumer has one filter.
 * Each saga's log is a key of the `tidemark_sagas` KV bucket.
 */
export const SAGA_STREAM = 'SAGAS';
export const SAGA_SUBJECTS = ['saga.>'];
export const COMMAND_PREFIX = 'saga.cmd.';
export const INPUT_FILTER = 'saga.in.>';

export const SAGA_BUCKET = 'tidemark_sagas';
/** The stream behind the KV bucket: the saga log, which the dispatcher and the ClickHouse projector consume. */
export const SAGA_LOG_STREAM = `KV_${SAGA_BUCKET}`;

export const SAGA_CONSUMERS = {
  orchestrator: { stream: SAGA_STREAM, durable: 'saga-orchestrator', filter: INPUT_FILTER },
  dispatcher: { stream: SAGA_LOG_STREAM, durable: 'saga-dispatcher', filter: `$KV.${SAGA_BUCKET}.>` },
  projector: { stream: SAGA_LOG_STREAM, durable: 'saga-projector', filter: `$KV.${SAGA_BUCKET}.>` },
} as const;

export const triggerSubject = (saga: string): string => `saga.in.trigger.${saga}`;
export const replySubject = (saga: string): string => `saga.in.reply.${saga}`;
export const controlSubject = (saga: string): string => `saga.in.control.${saga}`;
export const tickSubject = (saga: string): string => `saga.in.tick.${saga}`;
export const alertSubject = (saga: string): string => `alerts.saga.${saga}`;

/** `saga.in.<kind>.<saga>` → its parts, or null for anything else. */
const INPUT_KINDS = ['trigger', 'reply', 'control', 'tick'] as const;
export type InputKind = (typeof INPUT_KINDS)[number];

export function parseInputSubject(subject: string): { kind: InputKind; saga: string } | null {
  const [a, b, kind, saga, ...rest] = subject.split('.');
  if (a !== 'saga' || b !== 'in' || !saga || rest.length) return null;
  return INPUT_KINDS.includes(kind as InputKind) ? { kind: kind as InputKind, saga } : null;
}

const SAFE_ID = /^[A-Za-z0-9_-]{1,200}$/;

/**
 * `<saga>.<trigger id>`, usable as a KV key. An id with other characters is carried
 * as `=` + base64url, which no plain id can collide with (plain ids have no `=`).
 */
export const sagaIdOf = (saga: string, triggerId: string): string =>
  `${saga}.${SAFE_ID.test(triggerId) ? triggerId : `=${Buffer.from(triggerId).toString('base64url')}`}`;

export const sagaNameOf = (sagaId: string): string => sagaId.split('.')[0] ?? '';
