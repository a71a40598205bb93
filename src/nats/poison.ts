import type { JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { deliveryCount } from './js-msg.ts';

/**
 * How a message that keeps failing on its own ends: one that still fails after
 * `maxDeliveries` deliveries while other messages were handled meanwhile is poison for
 * this consumer, and `file` puts it in the DLQ (and terms it). While nothing succeeds
 * (an outage), nothing is filed: everything waits and is retried.
 *
 * On a quiet feed nothing else may come to pass: `healthy` then tells poison from an
 * outage, given the message's last error, by asking what the handler writes to (a
 * ClickHouse ping, say). A message that failed `maxDeliveries` times while that answers
 * is poison too; one that fails while it does not answer, or with the sink's own error,
 * waits, as in any outage.
 */
export type PoisonPolicy = {
  maxDeliveries: number;
  file: (msg: JsMsg, reason: string) => Promise<void>;
  healthy?: (err: unknown) => Promise<boolean>;
};

export type PoisonTracker = {
  /** something was handled without error: a message that fails while this happens is failing on its own */
  passed: () => void;
  /** a message failed alone: filed when it is poison, else nak()ed for redelivery after `retryDelayMs` */
  failed: (msg: JsMsg, err: unknown, retryDelayMs: number) => Promise<void>;
};

/** A probe that throws is an unhealthy sink: the message waits. */
async function isHealthy(policy: PoisonPolicy, err: unknown): Promise<boolean> {
  if (!policy.healthy) return false;
  try {
    return await policy.healthy(err);
  } catch {
    return false;
  }
}

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
      if (before !== undefined && deliveries >= policy.maxDeliveries) {
        const othersPassed = handled > before;
        if (othersPassed || (await isHealthy(policy, err))) {
          failedWhen.delete(msg.seq);
          const meanwhile = othersPassed ? 'while handling others' : 'while its sink answered';
          logger.error({ err, stream, durable, seq: msg.seq, deliveries }, `message keeps failing ${meanwhile}; filed in the DLQ`);
          await policy.file(msg, `${stream}/${durable} failed it ${deliveries} times ${meanwhile}: ${(err as Error)?.message ?? String(err)}`);
          return;
        }
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
