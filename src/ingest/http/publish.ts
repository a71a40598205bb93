import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { idFromSequence } from '../../core/identity.ts';
import { retryTransient } from '../../nats/retry.ts';
import { dlqRecord, publishToDlq } from '../dlq.ts';
import type { PreparedItem } from './items.ts';

type Valid = Extract<PreparedItem, { ok: true }>;
type Invalid = Extract<PreparedItem, { ok: false }>;

export type AcceptedItem = { index: number; id: string; seq: number; duplicate?: true };
export type FailedItem = { index: number; reason: string };

/**
 * One awaited publish at a time manages ~5k msg/s, a window of ~100 ~30k (TRAPS);
 * a bounded window also keeps an 8 MB request of tiny events from arming tens of
 * thousands of request timers at once, which would time out the tail of the batch.
 */
const IN_FLIGHT = 256;

/** Runs `task` over `items` with at most `width` in flight, started in order so stream sequences follow the request. */
async function settleWindowed<T, R>(items: readonly T[], width: number, task: (item: T) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { status: 'fulfilled', value: await task(items[i]!) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return results;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Publishes valid items to INGEST; an item is accepted only once its PubAck is in. */
export async function publishValid(js: JetStreamClient, items: readonly Valid[]): Promise<{ accepted: AcceptedItem[]; failed: FailedItem[] }> {
  const settled = await settleWindowed(items, IN_FLIGHT, (item): Promise<PubAck> => {
    const send = () => js.publish(item.subject, item.payload, { msgID: item.msgID });
    // only an item with a message id is sent again during an election: a copy stored before its PubAck was lost is dropped as a duplicate
    return item.msgID === undefined ? send() : retryTransient(send);
  });
  const accepted: AcceptedItem[] = [];
  const failed: FailedItem[] = [];
  settled.forEach((outcome, i) => {
    const { index, id } = items[i]!;
    if (outcome.status === 'rejected') {
      failed.push({ index, reason: `not stored in INGEST: ${errorText(outcome.reason)}` });
      return;
    }
    const ack = outcome.value;
    accepted.push({ index, id: id ?? idFromSequence(ack.stream, ack.seq), seq: ack.seq, ...(ack.duplicate ? { duplicate: true as const } : {}) });
  });
  return { accepted, failed };
}

export type DlqContext = {
  js: JetStreamClient;
  requestId: string;
  remoteAddress: string;
  headers: Record<string, string[]>;
  receivedAt: number;
  maxPayload: number;
};

/** Files every rejected item in the DLQ; a failure is reported so the caller can retry rather than lose it. */
export async function publishInvalid(ctx: DlqContext, items: readonly Invalid[]): Promise<FailedItem[]> {
  const settled = await settleWindowed(items, IN_FLIGHT, (item) => {
    const record = dlqRecord(item.rejection, item.raw, item.subject, ctx.headers, { http: ctx.remoteAddress }, ctx.receivedAt, ctx.maxPayload);
    return publishToDlq(ctx.js, record, `http-${ctx.requestId}-${item.index}`);
  });
  const failed: FailedItem[] = [];
  settled.forEach((outcome, i) => {
    if (outcome.status === 'rejected') failed.push({ index: items[i]!.index, reason: `rejected, and not stored in DLQ: ${errorText(outcome.reason)}` });
  });
  return failed;
}
