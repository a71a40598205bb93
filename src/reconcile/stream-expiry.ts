import type { Consumer, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { runLoop } from '../core/loop.ts';
import { deliveryCount, storedAtMs } from '../nats/js-msg.ts';
import { poisonTracker } from '../nats/poison.ts';
import type { Feed } from './feeds.ts';
import { arrive, expire } from './logic/pending.ts';
import { applyAndEmit, decodeFeed, type StreamDeps } from './stream-apply.ts';

/**
 * How far the other feed's match cursor has certainly got, in stored time: everything
 * stored before the returned instant has been paired. Caught up (nothing pending or
 * unacked): the clock's now. Otherwise: the store time of the first message after its
 * ack floor, since the stream is in store order. Undefined when that cannot be read.
 */
async function processedUpTo(jsm: JetStreamManager, feed: Feed, now: number): Promise<number | undefined> {
  const info = await jsm.consumers.info(feed.match.stream, feed.match.durable);
  if (info.num_pending === 0 && info.num_ack_pending === 0) return now;
  const floor = info.ack_floor.stream_seq;
  // a few tries: the message right after the floor may have been deleted from the stream
  for (let seq = floor + 1; seq <= floor + 16; seq++) {
    try {
      const msg = await jsm.streams.getMessage(feed.match.stream, { seq });
      if (msg) return msg.time.getTime();
    } catch {
      // deleted or not there: try the next one
    }
  }
  return undefined;
}

export type ExpiryCursor = { stop: () => Promise<void>; done: Promise<void> };

/**
 * The expiry cursor of one feed: a second durable consumer on the same messages that
 * takes each record only when its window (store time + lag) has passed both on the
 * clock and on the other feed's match cursor — so a reconciler that was down, or a
 * backlog on the other feed, never turns a late partner into a false Missing. It
 * re-applies the arrival (a no-op if the match cursor got there first) and the expiry
 * in one compare-and-set. Messages not yet due are held (at most one batch), kept
 * alive with `working()`, and taken in store order.
 */
export function startExpiryCursor(deps: StreamDeps & { jsm: JetStreamManager }, feed: Feed, other: Feed, ackWaitMs: number): ExpiryCursor {
  const { recon, js, jsm, clock, logger } = deps;
  const controller = new AbortController();
  let held: JsMsg[] = [];
  let lastTouch = 0;
  const poison = poisonTracker(deps.poison, { stream: feed.expiry.stream, durable: feed.expiry.durable, logger });
  const RETRY_MS = 1_000;

  let consumer: Consumer | undefined;
  const fill = async (): Promise<void> => {
    consumer ??= await js.consumers.get(feed.expiry.stream, feed.expiry.durable);
    const batch = await consumer.fetch({ max_messages: recon.stream.batchSize, expires: 1_000 });
    for await (const msg of batch) held.push(msg);
  };

  const expireAll = async (msgs: JsMsg[]): Promise<void> => {
    const items = await decodeFeed(js, recon, feed.side, msgs);
    await applyAndEmit(deps, items, (item, current) => {
      const arrived = arrive(recon, current, feed.side, item.ref, item.record, item.arrivedAt);
      const expired = expire(recon, arrived.entry, feed.side, item.ref);
      return { entry: expired.entry, changed: arrived.changed || expired.changed };
    });
    for (const item of items) item.msg.ack();
  };

  /** Like the batch consumer: a failed batch that failed before too is taken one by one, so a message failing on its own ends in the DLQ. */
  const applyDue = async (due: JsMsg[]): Promise<void> => {
    try {
      await expireAll(due);
      poison.passed();
    } catch (err) {
      if (controller.signal.aborted) throw err;
      if (due.length > 1 && due.some((m) => deliveryCount(m) > 1)) {
        for (const m of due) await applyDue([m]);
        return;
      }
      if (due.length === 1) {
        await poison.failed(due[0]!, err, RETRY_MS);
        return;
      }
      for (const m of due) m.nak(RETRY_MS);
      throw err;
    }
  };

  /** one step; returns how long to wait before the next */
  const tick = async (): Promise<number> => {
    if (held.length === 0) await fill();
    if (held.length === 0) return 0;
    const now = clock.now();
    const otherUpTo = await processedUpTo(jsm, other, now);
    const horizon = Math.min(now, otherUpTo ?? -Infinity) - recon.lag;
    const due = held.filter((m) => storedAtMs(m) <= horizon);
    if (due.length > 0) {
      held = held.filter((m) => !due.includes(m));
      await applyDue(due);
      return 0;
    }
    // well within ack_wait, or JetStream would hand the held messages out again
    if (Date.now() - lastTouch > ackWaitMs / 3) {
      for (const m of held) m.working();
      lastTouch = Date.now();
    }
    const wait = Math.min(...held.map((m) => storedAtMs(m))) + recon.lag - now;
    return Math.max(10, Math.min(recon.stream.tick, wait));
  };

  const loop = runLoop({
    name: 'expiry cursor step',
    context: { feed: feed.expiry.durable },
    everyMs: 0,
    retryMs: 500,
    logger,
    step: async () => {
      try {
        return await tick();
      } catch (err) {
        if (!controller.signal.aborted) {
          for (const m of held) m.nak(1_000);
          held = [];
        }
        throw err;
      }
    },
  });

  return {
    done: loop.done,
    stop: async () => {
      controller.abort();
      await loop.stop();
    },
  };
}
