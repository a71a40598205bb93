import type { JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { deliveryCount } from './batch-consumer.ts';

/**
 * How a message that keeps failing on its own ends: one that still fails after
 * `maxDeliveries` deliveries while other messages were handled meanwhile is poison for
 * this consumer, and `file` puts it in the DLQ (and terms it). While nothing succeeds
 * (an outage), nothing is filed: everything waits and is retried.
 */
export type PoisonPolicy = { maxDeliveries: number; file: (msg: JsMsg, reason: string) => Promise<void> };

export type PoisonTracker = {
  /** something was handled without error: a message that fails while this happens is failing on its own */
  passed: () => void;
  /** a message failed alone: filed when it is poison, else nak()ed for redelivery after `retryDelayMs` */
  failed: (msg: JsMsg, err: unknown, retryDelayMs: number) => Promise<void>;
};

/** Remembered failures at most: cleared when full (a message then needs a few more deliveries to be judged). */
const MAX_REMEMBERED = 10_000;

/** One per consumer (its durable), shared by every loop that handles its messages. */
export function poisonTracker(policy: PoisonPolicy, where: { stream: string; durable: string; logger: Logger }): PoisonTracker {
  const { stream, durable, logger } = where;
  let handled = 0;
  /** `handled` when each message (by stream sequence) first failed alone */
  const failedWhen = new Map<number, number>();
  return {
    passed: () => {
      handled++;
    },
    failed: async (msg, err, retryDelayMs) => {
      const before = failedWhen.get(msg.seq);
      const deliveries = deliveryCount(msg);
      if (before !== undefined && handled > before && deliveries >= policy.maxDeliveries) {
        failedWhen.delete(msg.seq);
        logger.error({ err, stream, durable, seq: msg.seq, deliveries }, 'message keeps failing while others pass; filed in the DLQ');
        await policy.file(msg, `${stream}/${durable} failed it ${deliveries} times while handling others: ${(err as Error)?.message ?? String(err)}`);
        return;
      }
      if (before === undefined) {
        if (failedWhen.size >= MAX_REMEMBERED) failedWhen.clear();
        failedWhen.set(msg.seq, handled);
      }
      logger.warn({ err, stream, durable, seq: msg.seq }, 'message failed; it will be redelivered');
      msg.nak(retryDelayMs);
    },
  };
}
