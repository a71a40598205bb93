import { createHash } from 'node:crypto';
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { headers, type MsgHdrs } from '@nats-io/transport-node';
import { idFromPackPart, idFromSequence } from '../../core/identity.ts';
import { retryTransient } from '../../nats/retry.ts';
import { INGEST_PACK_HEADER, packItems } from '../ingest-packs.ts';
import { dlqRecord, publishToDlq } from '../../nats/dlq.ts';
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

/** A request's valid items, grouped for INGEST: one message each, or packs of one subject. */
export type PackingLimits = { packFrom: number; maxBytes: number; maxItems: number };

/** What goes to INGEST in one publish: its members' positions in `items`. */
type Unit = { subject: string; data: Buffer; msgID: string | undefined; members: number[]; packed: boolean };

const packMsgId = (msgIDs: string[]): string => `http-pack-${createHash('sha256').update(msgIDs.join('\n')).digest('base64url')}`;

/**
 * Items of one subject and kind (with an id or without) come in packs once there are
 * `packFrom` of them; fewer go one a message, as before. A pack of items that all have
 * ids is named by their message ids in order, so a retried identical request collapses
 * in INGEST; items without ids never carried a message id, and their pack has none either.
 */
function units(items: readonly Valid[], members: number[], limits: PackingLimits): Unit[] {
  const groups = new Map<string, number[]>();
  for (const i of members) {
    const key = `${items[i]!.msgID === undefined ? '-' : '+'}${items[i]!.subject}`;
    const group = groups.get(key);
    if (group) group.push(i);
    else groups.set(key, [i]);
  }
  const out: Unit[] = [];
  for (const group of groups.values()) {
    if (group.length < limits.packFrom) {
      for (const i of group) out.push({ subject: items[i]!.subject, data: items[i]!.payload, msgID: items[i]!.msgID, members: [i], packed: false });
      continue;
    }
    let pack: number[] = [];
    let bytes = 0;
    const close = () => {
      const first = items[pack[0]!]!;
      const msgID = first.msgID === undefined ? undefined : packMsgId(pack.map((i) => items[i]!.msgID!));
      out.push({ subject: first.subject, data: packItems(pack.map((i) => items[i]!.payload)), msgID, members: pack, packed: true });
      pack = [];
      bytes = 0;
    };
    for (const i of group) {
      const size = items[i]!.payload.byteLength + 1;
      if (pack.length && (pack.length >= limits.maxItems || bytes + size > limits.maxBytes)) close();
      pack.push(i);
      bytes += size;
    }
    close();
  }
  return out;
}

/**
 * Publishes valid items to INGEST; an item is accepted only once the PubAck of the
 * message holding it is in. A byte-identical copy of an earlier item of the request
 * (same message id) is not sent again: it is that item's duplicate.
 */
export async function publishValid(js: JetStreamClient, items: readonly Valid[], limits: PackingLimits): Promise<{ accepted: AcceptedItem[]; failed: FailedItem[] }> {
  const firstOf = new Map<string, number>();
  const copyOf = new Map<number, number>();
  const members: number[] = [];
  items.forEach((item, i) => {
    const first = item.msgID === undefined ? undefined : firstOf.get(item.msgID);
    if (first !== undefined) return copyOf.set(i, first);
    if (item.msgID !== undefined) firstOf.set(item.msgID, i);
    members.push(i);
  });
  const planned = units(items, members, limits);
  const settled = await settleWindowed(planned, IN_FLIGHT, (unit): Promise<PubAck> => {
    const send = () => js.publish(unit.subject, unit.data, { msgID: unit.msgID, ...(unit.packed ? { headers: packHeaders(unit.members.length) } : {}) });
    // only a message with an id is sent again during an election: a copy stored before its PubAck was lost is dropped as a duplicate
    return unit.msgID === undefined ? send() : retryTransient(send);
  });
  const outcomes: Array<{ ok: true; item: AcceptedItem } | { ok: false; reason: string }> = new Array(items.length);
  settled.forEach((outcome, u) => {
    const unit = planned[u]!;
    unit.members.forEach((i, part) => {
      const { index, id } = items[i]!;
      if (outcome.status === 'rejected') {
        outcomes[i] = { ok: false, reason: `not stored in INGEST: ${errorText(outcome.reason)}` };
        return;
      }
      const ack = outcome.value;
      const derived = id ?? (unit.packed ? idFromPackPart(ack.stream, ack.seq, part) : idFromSequence(ack.stream, ack.seq));
      outcomes[i] = { ok: true, item: { index, id: derived, seq: ack.seq, ...(ack.duplicate ? { duplicate: true as const } : {}) } };
    });
  });
  const accepted: AcceptedItem[] = [];
  const failed: FailedItem[] = [];
  items.forEach((item, i) => {
    const first = copyOf.get(i);
    const outcome = outcomes[first ?? i]!;
    if (!outcome.ok) failed.push({ index: item.index, reason: outcome.reason });
    else if (first === undefined) accepted.push(outcome.item);
    else accepted.push({ ...outcome.item, index: item.index, duplicate: true });
  });
  return { accepted, failed };
}

function packHeaders(count: number): MsgHdrs {
  const h = headers();
  h.set(INGEST_PACK_HEADER, String(count));
  return h;
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
