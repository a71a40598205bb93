import { validateEventBody, type EnvelopeLimits, type Rejection } from '../../core/envelope.ts';
import { ingestMsgId } from '../../core/identity.ts';
import { FIELD_LIMITS, hasControlCharacter, hasLoneSurrogate, overBytes } from '../../core/field-limits.ts';
import { STREAMS } from '../../nats/topology.ts';
import type { BodyItem } from './body.ts';

/** `?source=&type=` of the request: used for items that carry no field of their own. */
export type ItemDefaults = { source?: string | undefined; type?: string | undefined };

export type PreparedItem =
  | { ok: true; index: number; subject: string; payload: Buffer; id: string | undefined; msgID: string | undefined }
  | { ok: false; index: number; subject: string; raw: Buffer; rejection: Rejection };

const TOKEN = /^[^.*>\s]+$/;

/** A token fit for a subject: no separator, wildcard, whitespace or control, well-formed, short. */
const safeToken = (token: string, limit: number): boolean =>
  TOKEN.test(token) && !hasControlCharacter(token) && !hasLoneSurrogate(token) && overBytes(token, limit) === undefined;

const asText = (value: unknown): string | undefined =>
  typeof value === 'string' ? value : typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : undefined;

/**
 * `ingest.<source>.<type>` from whatever the item offers; a missing or unusable part
 * becomes `_`, so even a rejected item gets a subject its DLQ copy can be published on.
 */
function ingestSubject(source: unknown, type: unknown): string {
  const s = asText(source);
  const t = asText(type);
  const safeSource = s !== undefined && safeToken(s, FIELD_LIMITS.source) ? s : '_';
  const safeType = t !== undefined && overBytes(t, FIELD_LIMITS.type) === undefined && t.split('.').every((token) => safeToken(token, FIELD_LIMITS.type)) ? t : '_';
  return `ingest.${safeSource}.${safeType}`;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

const tooLarge = (size: number, limit: number): Rejection => ({ code: 'TOO_LARGE', reason: `event is ${size} bytes, over the limit of ${limit}` });

function missingField(field: 'source' | 'type'): Rejection {
  return { code: 'INVALID_SUBJECT', reason: `no ${field}: the event has no "${field}" field and the request has no ?${field}= default` };
}

/**
 * Validates one item exactly as the NATS gateway will (same envelope rules, same size
 * limit on the same bytes), so what HTTP accepts is never rejected downstream.
 */
export function prepareItem(item: BodyItem, defaults: ItemDefaults, limits: EnvelopeLimits, receivedAt: number): PreparedItem {
  const { index } = item;
  const fallbackSubject = ingestSubject(defaults.source, defaults.type);
  if (!item.parsed.ok) {
    const rejection = item.raw.byteLength > limits.maxEventBytes ? tooLarge(item.raw.byteLength, limits.maxEventBytes) : item.parsed.rejection;
    return { ok: false, index, subject: fallbackSubject, raw: item.raw, rejection };
  }
  const value = item.parsed.value;
  const payload = Buffer.from(JSON.stringify(value));
  // the query defaults are validated as if they were the item's own fields, so a bad ?source= is reported, not published
  const fields = isObject(value) ? { ...value, source: value.source ?? defaults.source, type: value.type ?? defaults.type } : value;
  const subject = isObject(fields) ? ingestSubject(fields.source, fields.type) : fallbackSubject;
  const rejected = (rejection: Rejection): PreparedItem => ({ ok: false, index, subject, raw: item.raw, rejection });

  if (payload.byteLength > limits.maxEventBytes) return rejected(tooLarge(payload.byteLength, limits.maxEventBytes));
  if (isObject(fields) && fields.source == null) return rejected(missingField('source'));
  if (isObject(fields) && fields.type == null) return rejected(missingField('type'));

  const result = validateEventBody(fields, { subject, msgId: undefined, stream: STREAMS.ingest.name, seq: 0, receivedAt }, limits);
  if (!result.ok) return rejected(result.rejection);
  const { event } = result;
  // without an id of its own the event gets ~INGEST-<seq> downstream, which only the PubAck can tell
  const id = isObject(value) && value.id != null ? event.id : undefined;
  const msgID = id === undefined ? undefined : ingestMsgId(event.source, id, payload);
  return { ok: true, index, subject: `ingest.${event.source}.${event.type}`, payload, id, msgID };
}

/** A body with no event candidates in it (not JSON, not NDJSON) is filed in the DLQ whole, as item 0. */
export function rejectWholeBody(raw: Buffer, rejection: Rejection, defaults: ItemDefaults): PreparedItem {
  return { ok: false, index: 0, subject: ingestSubject(defaults.source, defaults.type), raw, rejection };
}
