import { createHash } from 'node:crypto';
import type { JetStreamClient, JsMsg, PubAck } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import type { Rejection } from '../core/envelope.ts';
import { FIELD_LIMITS, overBytes } from '../core/field-limits.ts';
import type { PublishItem } from './batch-publisher.ts';
import { retryTransient } from './retry.ts';

/** What the DLQ keeps of a rejected input: everything needed to inspect and re-publish it. */
export type DlqRecord = {
  code: Rejection['code'];
  reason: string;
  subject: string;
  /** the allow-listed headers only (DLQ_HEADERS), each value cut to a bounded length */
  headers: Record<string, string[]>;
  /** the raw bytes, base64, exactly as received; only their head when `rawTruncated` */
  raw: string;
  /** size of the whole raw input in bytes */
  rawBytes: number;
  /** set when `raw` holds only the head of the input, so the record fits one NATS message */
  rawTruncated?: true;
  /** SHA-256 (hex) of the whole raw input, when `raw` holds only its head */
  rawSha256?: string;
  /** where it came from: `INGEST` stream + sequence, `http`, or a ClickHouse `table` that refused a row derived from it */
  origin: { stream: string; seq: number; part?: number } | { http: string } | { table: string };
  receivedAt: number;
};

/** The NATS default max_payload; callers pass the server's own (`nc.info.max_payload`) when they have it. */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/**
 * Headers a DLQ record keeps (case-insensitive): enough to trace and re-publish an
 * input. Everything else (cookies, credentials, a client's thousand custom headers)
 * stays out, so a record's size does not depend on what a caller chose to send.
 */
export const DLQ_HEADERS: ReadonlySet<string> = new Set([
  'nats-msg-id',
  'content-type',
  'content-encoding',
  'user-agent',
  'traceparent',
  'tracestate',
  'x-request-id',
  'x-correlation-id',
  'x-forwarded-for',
]);
const MAX_HEADER_VALUE = 256;
const MAX_HEADER_VALUES = 4;
const MAX_REASON = 1024;
/** Room kept in a DLQ message for everything but the base64 raw bytes: reason, headers, subject, JSON. */
const RECORD_OVERHEAD = 16 * 1024;

/** `dlq.<origin subject>` keeps the original subject visible, so `nats sub 'dlq.ingest.store-17.>'` works; an over-long one is filed under `dlq._.long`. */
export const dlqSubject = (subject: string): string =>
  overBytes(subject, FIELD_LIMITS.subject) === undefined ? `dlq.${subject.replace(/^dlq\./, '')}` : 'dlq._.long';

/** Allow-listed headers with bounded values, in a map no header name can corrupt (`__proto__`, `constructor`). */
export function keptHeaders(headers: Iterable<[string, string[]]>): Record<string, string[]> {
  const out: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  for (const [name, values] of headers) {
    if (!DLQ_HEADERS.has(name.toLowerCase())) continue;
    const kept = (out[name] ??= []);
    for (const value of values) if (kept.length < MAX_HEADER_VALUES) kept.push(value.slice(0, MAX_HEADER_VALUE));
  }
  return out;
}

export function dlqRecord(
  rejection: Rejection,
  raw: Uint8Array,
  subject: string,
  headers: Record<string, string[]>,
  origin: DlqRecord['origin'],
  receivedAt: number,
  maxPayload = DEFAULT_MAX_PAYLOAD,
): DlqRecord {
  const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  // base64 takes 4 bytes for 3
  const room = Math.max(0, Math.floor(((maxPayload - RECORD_OVERHEAD) * 3) / 4));
  const cut = bytes.byteLength > room;
  const reason = rejection.reason.slice(0, MAX_REASON);
  return {
    code: rejection.code,
    reason: cut ? `${reason} (raw bytes cut to the first ${room} of ${bytes.byteLength} to fit a NATS message; rawSha256 is of them all)` : reason,
    subject: subject.slice(0, FIELD_LIMITS.subject),
    headers: keptHeaders(Object.entries(headers)),
    raw: (cut ? bytes.subarray(0, room) : bytes).toString('base64'),
    rawBytes: bytes.byteLength,
    ...(cut ? { rawTruncated: true as const, rawSha256: createHash('sha256').update(bytes).digest('hex') } : {}),
    origin,
    receivedAt,
  };
}

/** The DLQ message of a rejection, for a batch publisher. */
export function dlqItem(record: DlqRecord, msgId: string): PublishItem {
  return {
    subject: dlqSubject(record.subject),
    data: JSON.stringify(record),
    msgId,
    headers: { 'Tidemark-Reject-Code': record.code, 'Tidemark-Reject-Reason': reasonHeader(record.reason) },
  };
}

/** A header value nats.js accepts: no CR or LF, bounded. */
const reasonHeader = (reason: string): string => reason.replace(/[\r\n]+/g, ' ').slice(0, 512);

/**
 * Publishes a rejection to the DLQ; `msgID` makes a re-delivered raw message land once,
 * and makes it safe to send again while the DLQ elects a leader (retryTransient): a
 * copy stored before its PubAck was lost is dropped as a duplicate. The reason also
 * travels in a header so `nats sub` shows it without decoding the body.
 */
export function publishToDlq(js: JetStreamClient, record: DlqRecord, msgID: string): Promise<PubAck> {
  const data = JSON.stringify(record);
  const headers = dlqHeaders(record);
  return retryTransient(() => js.publish(dlqSubject(record.subject), data, { msgID, headers }));
}

function dlqHeaders(record: DlqRecord): MsgHdrs {
  const h = natsHeaders();
  h.set('Tidemark-Reject-Code', record.code);
  h.set('Tidemark-Reject-Reason', reasonHeader(record.reason));
  return h;
}

/**
 * Ends a message a consumer cannot process: a DLQ record with the reason, then term()
 * without an argument (nats-server 2.9 ignores a reason and would redeliver, TRAPS).
 * Should the DLQ be unreachable, the message is nak'd and comes back later.
 */
export async function terminateToDlq(js: JetStreamClient, msg: JsMsg, reason: string, code: Rejection['code'] = 'UNPROCESSABLE'): Promise<void> {
  const headers: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  for (const key of msg.headers?.keys() ?? []) headers[key] = msg.headers!.values(key);
  try {
    const record = dlqRecord({ code, reason }, msg.data, msg.subject, headers, { stream: msg.info.stream, seq: msg.seq }, Number(msg.timestampNanos / 1_000_000n));
    await publishToDlq(js, record, `${msg.info.stream}-${msg.seq}`);
    msg.term();
  } catch {
    msg.nak(1_000);
  }
}
