import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import type { Rejection } from '../core/envelope.ts';
import type { PublishItem } from '../nats/batch-publisher.ts';

/** What the DLQ keeps of a rejected input: everything needed to inspect and re-publish it. */
export type DlqRecord = {
  code: Rejection['code'];
  reason: string;
  subject: string;
  headers: Record<string, string[]>;
  /** the raw bytes, base64, exactly as received */
  raw: string;
  /** where it came from: `INGEST` stream + sequence, or `http` */
  origin: { stream: string; seq: number } | { http: string };
  receivedAt: number;
};

/** `dlq.<origin subject>` keeps the original subject visible, so `nats sub 'dlq.ingest.store-17.>'` works. */
export const dlqSubject = (subject: string): string => `dlq.${subject.replace(/^dlq\./, '')}`;

export function dlqRecord(rejection: Rejection, raw: Uint8Array, subject: string, headers: Record<string, string[]>, origin: DlqRecord['origin'], receivedAt: number): DlqRecord {
  return {
    code: rejection.code,
    reason: rejection.reason,
    subject,
    headers,
    raw: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64'),
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

const reasonHeader = (reason: string): string => reason.replace(/[\r\n]+/g, ' ').slice(0, 512);

/**
 * Publishes a rejection to the DLQ; `msgID` makes a re-delivered raw message land once.
 * The reason also travels in a header so `nats sub` shows it without decoding the body.
 */
export function publishToDlq(js: JetStreamClient, record: DlqRecord, msgID: string): Promise<PubAck> {
  return js.publish(dlqSubject(record.subject), JSON.stringify(record), {
    msgID,
    headers: dlqHeaders(record),
  });
}


function dlqHeaders(record: DlqRecord): MsgHdrs {
  const h = natsHeaders();
  h.set('Tidemark-Reject-Code', record.code);
  h.set('Tidemark-Reject-Reason', reasonHeader(record.reason));
  return h;
}
