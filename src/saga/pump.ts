import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { PULL_EXPIRES_MS } from '../nats/batch-consumer.ts';
import { retryTransient } from '../nats/retry.ts';
import { limiter } from '../core/limiter.ts';

export type Pump = { stop: () => Promise<void> };

/**
 * Feeds a durable's messages to `handle`, at most `concurrency` at a time and with
 * no more than that prefetched, so instances sharing the durable split the work by
 * what each can handle rather than by who pulled first. The async iterator (not a
 * consume() callback) is what applies the back-pressure: it stops pulling while
 * its buffer is full. `handle` owns acknowledgement and must not throw.
 */
export async function startPump(options: { js: JetStreamClient; stream: string; durable: string; concurrency: number; handle: (msg: JsMsg) => Promise<void>; logger: Logger }): Promise<Pump> {
  const { concurrency, handle } = options;
  const consumer = await retryTransient(() => options.js.consumers.get(options.stream, options.durable));
  const messages = await consumer.consume({ max_messages: concurrency, expires: PULL_EXPIRES_MS });
  const slots = limiter(concurrency);
  const loop = (async () => {
    const pending = messages[Symbol.asyncIterator]();
    for (;;) {
      // a place first: a message pulled here with none free would wait in hand, not in the stream
      const release = await slots.slot();
      const next = await pending.next();
      if (next.done) {
        release();
        break;
      }
      void handle(next.value).finally(release);
    }
    await slots.idle();
  })().catch((err: unknown) => options.logger.error({ err, durable: options.durable }, 'consumer stopped'));
  return {
    stop: async () => {
      await messages.close();
      await loop;
    },
  };
}
