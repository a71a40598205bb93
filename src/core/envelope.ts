import { isExactJsonNumber } from './decimal.ts';
import { idFromMsgId, idFromPackPart, idFromSequence, isReservedId, RESERVED_ID_PREFIX } from './identity.ts';
import { FIELD_LIMITS, hasControlCharacter, hasLoneSurrogate, overBytes, preview } from './field-limits.ts';

/** The validated, stamped event as it travels on `events.>` and lands in ClickHouse. */
export type TidemarkEvent = {
  id: string;
  type: string;
  source: string;
  key: string | null;
  /** epoch milliseconds */
  occurredAt: number;
  /** epoch milliseconds: when JetStream stored the raw message */
  receivedAt: number;
  data: Record<string, unknown>;
  /** sequence of the raw message in the INGEST stream (0 for HTTP-only paths that never had one) */
  seq: number;
};

/** Why an input was rejected; `code` is stable for machines, `reason` is for people. */
export type Rejection = { code: RejectionCode; reason: string };

export type RejectionCode =
  | 'TOO_LARGE'
  | 'INVALID_JSON'
  | 'NOT_AN_OBJECT'
  | 'INVALID_FIELD'
  | 'MISSING_OCCURRED_AT'
  | 'INVALID_OCCURRED_AT'
  | 'FUTURE_OCCURRED_AT'
  | 'EXPIRED_OCCURRED_AT'
  | 'INEXACT_NUMBER'
  | 'INVALID_SUBJECT'
  | 'RESERVED_ID'
  | 'DUPLICATE_ID_CONFLICT'
  | 'CONTROL_CHARACTER'
  | 'LONE_SURROGATE'
  | 'TOO_LONG'
  | 'TOO_DEEP'
  /** an HTTP request with more items than `http.maxItems` (answered 413, nothing stored) */
  | 'TOO_MANY_ITEMS'
  /** valid, yet NATS refused to build or store its message (a defensive net: validation should make it impossible) */
  | 'UNPUBLISHABLE'
  /** valid, yet ClickHouse refused the row; the reason holds the engine's error */
  | 'REFUSED_BY_SINK'
  /** a message a consumer (saga, …) cannot read as what its subject promises */
  | 'UNPROCESSABLE';

export type ParseResult = { ok: true; event: TidemarkEvent } | { ok: false; rejection: Rejection };

export type RawMeta = {
  subject: string;
  /** the publisher's Nats-Msg-Id header, if any */
  msgId?: string | undefined;
  stream: string;
  seq: number;
  /** the item's place in a packed INGEST message (`INGEST_PACK_HEADER`); absent for a message of one event */
  part?: number | undefined;
  receivedAt: number;
};

export type EnvelopeLimits = {
  maxEventBytes: number;
  maxFutureSkew: number;
  retention: number;
};

const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;
/** One NATS subject token: no separators, wildcards or whitespace. */
const SUBJECT_TOKEN = /^[^.*>\s]+$/;
const MAX_NESTING = 32;

/** Sources and types seen valid (every check of a source or a type passed): a gateway checks the same few names over and over. */
const validNames = { token: new Set<string>(), dotted: new Set<string>() };

/** One subject token, or with `dotted` several joined by "."; answers are cached (bounded). */
function isSubjectTokens(name: string, dotted: boolean): boolean {
  const valid = dotted ? validNames.dotted : validNames.token;
  if (valid.has(name)) return true;
  if (!(dotted ? name.split('.') : [name]).every((t) => SUBJECT_TOKEN.test(t))) return false;
  if (valid.size >= SUBJECT_CACHE_SIZE) valid.clear();
  valid.add(name);
  return true;
}

const reject = (code: RejectionCode, reason: string): ParseResult => ({ ok: false, rejection: { code, reason } });

const SUBJECT_CACHE_SIZE = 10_000;
const subjectCache = new Map<string, Map<string, { source?: string; type?: string }>>();

/** `ingest.store-17.sale` → source `store-17`, type `sale`; longer subjects keep the rest as a dotted type. */
export function subjectParts(subject: string, prefix: string): { source?: string; type?: string } {
  // a gateway sees the same few subjects over and over: split each once
  let cache = subjectCache.get(prefix);
  if (!cache) subjectCache.set(prefix, (cache = new Map()));
  const known = cache.get(subject);
  if (known) return known;
  const tokens = subject.split('.');
  const source = tokens[1];
  const type = tokens.length > 2 ? tokens.slice(2).join('.') : undefined;
  const parts = tokens[0] !== prefix ? {} : { source: source || undefined, type: type || undefined };
  if (cache.size >= SUBJECT_CACHE_SIZE) cache.clear();
  cache.set(subject, parts);
  return parts;
}

export function parseOccurredAt(value: unknown): number | Rejection {
  if (value === undefined || value === null) {
    return { code: 'MISSING_OCCURRED_AT', reason: 'occurredAt is required (ISO-8601 with offset, or epoch milliseconds)' };
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      return { code: 'INVALID_OCCURRED_AT', reason: `occurredAt ${value} is not a non-negative integer of epoch milliseconds` };
    }
    return value;
  }
  if (typeof value === 'string') {
    if (/^\d{1,15}$/.test(value)) return Number(value);
    if (!ISO_WITH_OFFSET.test(value)) {
      return { code: 'INVALID_OCCURRED_AT', reason: `occurredAt "${preview(value)}" is not ISO-8601 with a time-zone offset (e.g. 2026-11-20T13:05:00+08:00) nor epoch milliseconds` };
    }
    const ms = Date.parse(value);
    if (Number.isNaN(ms)) return { code: 'INVALID_OCCURRED_AT', reason: `occurredAt "${preview(value)}" is not a valid date` };
    return ms;
  }
  return { code: 'INVALID_OCCURRED_AT', reason: `occurredAt must be a string or a number, got ${describe(value)}` };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${truncate(JSON.stringify(value))}`;
}

function truncate(text: string, max = 64): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

type DataProblem = { code: RejectionCode; path: string[]; message: string };

/**
 * Finds the first thing in `data` no sink can take as it is: a JSON number a double
 * cannot carry exactly (money never silently rounds), a lone surrogate in a key or a
 * string, an over-long key, or nesting past MAX_NESTING. Runs on every event: the path
 * is spelled out only for the answer.
 */
function findDataProblem(value: unknown, depth = 0): DataProblem | undefined {
  if (depth > MAX_NESTING) return { code: 'TOO_DEEP', path: [], message: `is nested deeper than ${MAX_NESTING} levels` };
  if (typeof value === 'number') {
    return isExactJsonNumber(value) ? undefined : { code: 'INEXACT_NUMBER', path: [], message: `= ${value} has more than 15 significant digits; send it as a string ("…") to keep it exact` };
  }
  if (typeof value === 'string') {
    return hasLoneSurrogate(value) ? { code: 'LONE_SURROGATE', path: [], message: 'holds a lone UTF-16 surrogate (\\ud800–\\udfff without its pair), which no UTF-8 store can keep' } : undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findDataProblem(value[i], depth + 1);
      if (found) return (found.path.unshift(`[${i}]`), found);
    }
    return undefined;
  }
  for (const k in value) {
    if (hasLoneSurrogate(k)) return { code: 'LONE_SURROGATE', path: [`.${preview(k)}`], message: 'is a key holding a lone UTF-16 surrogate, which no UTF-8 store can keep' };
    const bytes = overBytes(k, FIELD_LIMITS.dataKey);
    if (bytes !== undefined) return { code: 'TOO_LONG', path: [`.${preview(k)}`], message: `is a key of ${bytes} bytes, over the limit of ${FIELD_LIMITS.dataKey}` };
    const found = findDataProblem((value as Record<string, unknown>)[k], depth + 1);
    if (found) return (found.path.unshift(`.${preview(k)}`), found);
  }
  return undefined;
}

type CheckedField = 'id' | 'source' | 'type' | 'key';

/** Control characters, lone surrogates and length of a field that becomes part of subjects, headers, KV keys and columns. */
function fieldProblem(field: CheckedField, value: string): Rejection | undefined {
  if (hasControlCharacter(value)) return { code: 'CONTROL_CHARACTER', reason: `${field} "${preview(value)}" holds a control character (U+0000–U+001F, U+007F–U+009F)` };
  if (hasLoneSurrogate(value)) return { code: 'LONE_SURROGATE', reason: `${field} "${preview(value)}" holds a lone UTF-16 surrogate, which no UTF-8 store can keep` };
  const bytes = overBytes(value, FIELD_LIMITS[field]);
  if (bytes !== undefined) return { code: 'TOO_LONG', reason: `${field} is ${bytes} bytes, over the limit of ${FIELD_LIMITS[field]}` };
  return undefined;
}

function optionalString(body: Record<string, unknown>, field: string): string | undefined | Rejection {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  if (typeof value !== 'string') return { code: 'INVALID_FIELD', reason: `${field} must be a string, got ${describe(value)}` };
  if (value.length === 0) return { code: 'INVALID_FIELD', reason: `${field} must not be empty` };
  return value;
}

const isRejection = (v: unknown): v is Rejection => typeof v === 'object' && v !== null && 'code' in v && 'reason' in v;

/**
 * Validates a decoded JSON value into a canonical event. Shared by the NATS and HTTP
 * gateways, so both accept and reject exactly the same inputs for the same reasons.
 */
export function validateEventBody(body: unknown, meta: RawMeta, limits: EnvelopeLimits, prefix = 'ingest'): ParseResult {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return reject('NOT_AN_OBJECT', `an event must be a JSON object, got ${describe(body)}`);
  }
  const fields = body as Record<string, unknown>;
  const subjectBytes = overBytes(meta.subject, FIELD_LIMITS.subject);
  if (subjectBytes !== undefined) return reject('TOO_LONG', `the subject is ${subjectBytes} bytes, over the limit of ${FIELD_LIMITS.subject}`);
  const fromSubject = subjectParts(meta.subject, prefix);

  const id = optionalString(fields, 'id');
  if (isRejection(id)) return { ok: false, rejection: id };
  const type = optionalString(fields, 'type');
  if (isRejection(type)) return { ok: false, rejection: type };
  const source = optionalString(fields, 'source');
  if (isRejection(source)) return { ok: false, rejection: source };
  const key = optionalString(fields, 'key');
  if (isRejection(key)) return { ok: false, rejection: key };

  if (id !== undefined && isReservedId(id)) return reject('RESERVED_ID', `id "${preview(id)}" starts with "${RESERVED_ID_PREFIX}", which only ids Tidemark generates may`);
  const finalId = id ?? (meta.part !== undefined ? idFromPackPart(meta.stream, meta.seq, meta.part) : meta.msgId === undefined ? idFromSequence(meta.stream, meta.seq) : idFromMsgId(meta.msgId));
  const idProblem = fieldProblem('id', finalId);
  if (idProblem) return { ok: false, rejection: idProblem };
  const finalSource = source ?? fromSubject.source;
  if (finalSource === undefined) return reject('INVALID_SUBJECT', `no source: the subject "${preview(meta.subject)}" has no source token and the event has no "source" field`);
  // a name seen valid passed every check below: a gateway sees the same few over and over
  if (!validNames.token.has(finalSource)) {
    const sourceProblem = fieldProblem('source', finalSource);
    if (sourceProblem) return { ok: false, rejection: sourceProblem };
    if (!isSubjectTokens(finalSource, false)) return reject('INVALID_FIELD', `source "${preview(finalSource)}" must be one subject token (no ".", "*", ">" or whitespace)`);
  }
  const finalType = type ?? fromSubject.type;
  if (finalType === undefined) return reject('INVALID_SUBJECT', `no type: the subject "${preview(meta.subject)}" has no type token and the event has no "type" field`);
  if (!validNames.dotted.has(finalType)) {
    const typeProblem = fieldProblem('type', finalType);
    if (typeProblem) return { ok: false, rejection: typeProblem };
    if (!isSubjectTokens(finalType, true)) {
      return reject('INVALID_FIELD', `type "${preview(finalType)}" must be subject tokens separated by "." (no "*", ">" or whitespace)`);
    }
  }
  const keyProblem = key === undefined ? undefined : fieldProblem('key', key);
  if (keyProblem) return { ok: false, rejection: keyProblem };

  const occurredAt = parseOccurredAt(fields.occurredAt);
  if (isRejection(occurredAt)) return { ok: false, rejection: occurredAt };
  if (occurredAt > meta.receivedAt + limits.maxFutureSkew) {
    return reject('FUTURE_OCCURRED_AT', `occurredAt ${new Date(occurredAt).toISOString()} is more than ${limits.maxFutureSkew} ms after receivedAt ${new Date(meta.receivedAt).toISOString()}`);
  }
  if (occurredAt < meta.receivedAt - limits.retention) {
    return reject('EXPIRED_OCCURRED_AT', `occurredAt ${new Date(occurredAt).toISOString()} is older than the retention of ${limits.retention} ms`);
  }

  const data = fields.data ?? {};
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return reject('INVALID_FIELD', `data must be a JSON object, got ${describe(data)}`);
  const problem = findDataProblem(data);
  if (problem) return reject(problem.code, `data${problem.path.join('')} ${problem.message}`);

  return {
    ok: true,
    event: {
      id: finalId,
      type: finalType,
      source: finalSource,
      key: key ?? null,
      occurredAt,
      receivedAt: meta.receivedAt,
      data: data as Record<string, unknown>,
      seq: meta.seq,
    },
  };
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Raw bytes of one NATS message → canonical event or a rejection with its reason. */
export function parseRawEvent(raw: Uint8Array, meta: RawMeta, limits: EnvelopeLimits): ParseResult {
  if (raw.byteLength > limits.maxEventBytes) {
    return reject('TOO_LARGE', `event is ${raw.byteLength} bytes, over the limit of ${limits.maxEventBytes}`);
  }
  let text: string;
  try {
    text = decoder.decode(raw);
  } catch {
    return reject('INVALID_JSON', 'event is not valid UTF-8');
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    return reject('INVALID_JSON', `event is not valid JSON: ${(err as Error).message}`);
  }
  return validateEventBody(body, meta, limits);
}

/** Events travel on `events.<source>.<type>`. */
export const eventSubject = (event: Pick<TidemarkEvent, 'source' | 'type'>): string => `events.${event.source}.${event.type}`;

const encoder = new TextEncoder();

export const encodeEvent = (event: TidemarkEvent): Uint8Array => encoder.encode(JSON.stringify(event));

/**
 * A message on EVENTS carries one event, or several of the same subject as NDJSON (one
 * per line; the gateway packs what arrives together, so the stream, its consumers and
 * their acks handle one message per pack, not per event). This header holds the count
 * when it is more than one.
 */
export const EVENT_COUNT_HEADER = 'Tidemark-Events';

/** Events in one EVENTS message, from its headers (a message without the header is one event). */
export const eventCount = (headers: { get: (name: string) => string } | undefined): number => Number(headers?.get(EVENT_COUNT_HEADER)) || 1;

/** Events, each as `JSON.stringify` wrote it, as the body of one EVENTS message: one encoding for the whole pack. */
export const packEvents = (texts: string[]): Uint8Array => encoder.encode(texts.join('\n'));

/** The events of one EVENTS message, in order; throws when the body is not one event or NDJSON of events. */
export function decodeEvents(bytes: Uint8Array): TidemarkEvent[] {
  const text = decoder.decode(bytes);
  // JSON.stringify never leaves a raw newline inside a value, so lines are events and one parse does them all
  if (!text.includes('\n')) return [JSON.parse(text) as TidemarkEvent];
  try {
    return JSON.parse(`[${text.trimEnd().replaceAll('\n', ',')}]`) as TidemarkEvent[];
  } catch (err) {
    // one event written over several lines (by hand, say) is still one event
    const single: unknown = JSON.parse(text);
    if (single === null || typeof single !== 'object' || Array.isArray(single)) throw err;
    return [single as TidemarkEvent];
  }
}
