import { createInbox, headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';

export type PublishItem = { subject: string; data: Uint8Array | string; msgId?: string; headers?: Record<string, string> };
/**
 * `permanent`: the client refused to even send the message (a header value with CR/LF,
 * a payload over max_payload, an over-long subject): sending it again can never work,
 * so the caller must file it elsewhere instead of retrying.
 */
/** A refusal carries JetStream's API error code when the PubAck had one (10071: wrong last sequence). */
export type PublishOutcome = { ok: true; seq: number; duplicate: boolean } | { ok: false; error: string; code?: number; permanent?: true };

export type BatchPublisher = {
  /** Publishes every item to JetStream and resolves with one outcome per item, in order, once all are acked or the timeout passes. */
  publish: (items: PublishItem[], timeoutMs?: number) => Promise<PublishOutcome[]>;
  /** One message, like `js.publish`: resolves once stored, rejects with JetStream's reason otherwise. */
  publishOne: (item: PublishItem, timeoutMs?: number) => Promise<{ seq: number; duplicate: boolean }>;
  close: () => void;
};

/** A message JetStream did not store; `reason` is the server's (e.g. `wrong last sequence: 7`). */
export class PublishError extends Error {
  constructor(
    readonly subject: string,
    readonly reason: string,
    readonly code?: number,
  ) {
    super(`${subject}: ${reason}`);
    this.name = 'PublishError';
  }
}

type Pending = { outcomes: Array<PublishOutcome | undefined>; remaining: number; done: () => void };

const decoder = new TextDecoder();

/**
 * nats-server closes the connection (every role's) on a control line over 4096 bytes;
 * nats.js does not check: refuse here, keeping room for the reply subject and sizes.
 */
const MAX_SUBJECT_BYTES = 3072;

/** Errors the client raises for the connection, not for the message: those pass, and the batch is retried. */
const CONNECTION_ERRORS = new Set(['ClosedConnectionError', 'DrainingConnectionError']);

function buildHeaders(item: PublishItem) {
  const h = natsHeaders();
  if (item.msgId !== undefined) h.set('Nats-Msg-Id', item.msgId);
  for (const [k, v] of Object.entries(item.headers ?? {})) h.set(k, v);
  return h;
}

/**
 * JetStream publishing for whole batches. `js.publish` is a request per message, and
 * each request builds two Error objects for their stack traces and a timer: at tens of
 * thousands of messages a second that alone was a fifth of the gateway's CPU. Here
 * every message carries a reply subject under one inbox subscription, the PubAcks
 * are matched by token, and a batch has a single timer. Semantics are those of
 * `js.publish`: an item is stored once it has an ok outcome.
 */
export function createBatchPublisher(nc: NatsConnection): BatchPublisher {
  const prefix = createInbox();
  const slots = new Map<number, { batch: Pending; index: number }>();
  let token = 0;

  const settle = (id: number, outcome: PublishOutcome) => {
    const slot = slots.get(id);
    if (!slot) return;
    slots.delete(id);
    slot.batch.outcomes[slot.index] = outcome;
    if (--slot.batch.remaining === 0) slot.batch.done();
  };

  const onReply = (err: Error | null, msg: Msg) => {
    if (err) return;
    const id = Number(msg.subject.slice(prefix.length + 1));
    if (msg.headers && msg.headers.code >= 300) {
      settle(id, { ok: false, error: `${msg.headers.code} ${msg.headers.description || 'no stream answered'}` });
      return;
    }
    try {
      const ack = JSON.parse(decoder.decode(msg.data)) as { seq?: number; duplicate?: boolean; error?: { description?: string; err_code?: number } };
      if (ack.error || ack.seq === undefined) settle(id, { ok: false, error: ack.error?.description ?? 'no PubAck', ...(ack.error?.err_code !== undefined && { code: ack.error.err_code }) });
      else settle(id, { ok: true, seq: ack.seq, duplicate: ack.duplicate === true });
    } catch {
      settle(id, { ok: false, error: 'unreadable PubAck' });
    }
  };
  const sub: Subscription = nc.subscribe(`${prefix}.*`, { callback: onReply });
  // a closed connection never brings the PubAcks: fail what waits instead of timing out
  void nc.closed().then(() => {
    for (const id of [...slots.keys()]) settle(id, { ok: false, error: 'connection closed' });
  });

  const publish = (items: PublishItem[], timeoutMs = 10_000): Promise<PublishOutcome[]> => {
    if (items.length === 0) return Promise.resolve([]);
    return new Promise((resolve) => {
      const ids: number[] = [];
      let finished = false;
      const batch: Pending = {
        outcomes: new Array(items.length),
        remaining: items.length,
        done: () => {
          if (finished) return;
          finished = true;
          clearTimeout(timer);
          for (const id of ids) slots.delete(id);
          // Array.from, not map: map skips the holes left by PubAcks that never came, and they must fail
          resolve(Array.from(batch.outcomes, (o) => o ?? { ok: false, error: 'no PubAck before the timeout' }));
        },
      };
      const timer = setTimeout(() => batch.done(), timeoutMs);
      items.forEach((item, index) => {
        const id = ++token;
        ids.push(id);
        slots.set(id, { batch, index });
        try {
          if (item.subject.length * 3 > MAX_SUBJECT_BYTES && Buffer.byteLength(item.subject) > MAX_SUBJECT_BYTES) {
            throw new Error(`subject of ${Buffer.byteLength(item.subject)} bytes is over ${MAX_SUBJECT_BYTES}`);
          }
          nc.publish(item.subject, item.data, { reply: `${prefix}.${id}`, headers: buildHeaders(item) });
        } catch (err) {
          const error = err as Error;
          settle(id, CONNECTION_ERRORS.has(error.name) ? { ok: false, error: error.message } : { ok: false, error: error.message, permanent: true });
        }
      });
    });
  };

  const publishOne = async (item: PublishItem, timeoutMs?: number) => {
    const [outcome] = await publish([item], timeoutMs);
    if (!outcome?.ok) throw new PublishError(item.subject, outcome?.error ?? 'not published', outcome?.code);
    return { seq: outcome.seq, duplicate: outcome.duplicate };
  };

  return { publish, publishOne, close: () => sub.unsubscribe() };
}
