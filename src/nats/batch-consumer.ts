import type { Consumer, ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { eventCount } from '../core/envelope.ts';
import { retryTransient } from './retry.ts';
import { deliveryCount } from './js-msg.ts';
import { poisonTracker, type PoisonPolicy } from './poison.ts';
import { boundedPuller, type ReadAheadLimit } from './read-ahead.ts';

/** The handler owns acknowledgement: it acks each message only once what it caused is durable. */
export type BatchHandler = (msgs: JsMsg[]) => Promise<void>;

export type BatchConsumerOptions = {
  js: JetStreamClient;
  stream: string;
  durable: string;
  batchSize: number;
  handler: BatchHandler;
  logger: Logger;
  /** delay before a message whose batch failed is offered again */
  retryDelayMs?: number;
  /** batches handled at once: more than one keeps the process busy while a batch waits on acks or I/O */
  concurrency?: number;
  /** what a message counts for against `batchSize` (default 1: a batch is a number of messages) */
  weight?: (msg: JsMsg) => number;
  /** messages pulled ahead of the handler (default twice the batch size) */
  bufferMessages?: number;
  /** called synchronously as each message arrives, before it waits for a place in a batch */
  onArrival?: (msg: JsMsg) => void;
  /**
   * how long a message may wait for its batch to fill (default 0: a batch is whatever
   * has arrived). Under a steady load that gives fewer, bigger batches: for ClickHouse,
   * fewer parts to write and merge.
   */
  lingerMs?: number;
  /**
   * How a message that keeps failing on its own ends (poison.ts). After a failed batch
   * whose messages came before, each is handled alone, so one bad message cannot fail
   * its batch for ever.
   */
  poison?: PoisonPolicy;
  /**
   * Bounds the bytes of message data pulled and not yet handled (read-ahead.ts): pull
   * requests then ask for at most what is left of `maxBytes`, one at a time, instead of
   * consume()'s refills as messages arrive.
   */
  readAhead?: ReadAheadLimit;
};

/**
 * How long one pull request lives. The client notices a pull lost with its server only
 * after two missed heartbeats, at half of this each: with the default 30 s, a processor
 * whose consumer leader was killed waited 30 s (measured: a 45 s failover pause on a
 * three-node cluster); at 5 s it is back within about 5 s, for one extra pull request
 * every 5 s when idle.
 */
export const PULL_EXPIRES_MS = 5_000;

export type RunningConsumer = { stop: () => Promise<void>; done: Promise<void> };

/**
 * Pulls from a durable consumer and hands the handler whatever has arrived, up to
 * `batchSize` at a time: low latency when traffic is light, big batches under load.
 * `consume()` callbacks must stay synchronous, so the callback only queues and a
 * separate loop does the async work. consume() pulls more as messages arrive, not as
 * they are handled, so what waits here is bounded by the consumer's max_ack_pending
 * (see topology.ts), not by `bufferMessages`.
 */
export async function runBatchConsumer(options: BatchConsumerOptions): Promise<RunningConsumer> {
  const { js, stream, durable, batchSize, handler, logger } = options;
  const retryDelayMs = options.retryDelayMs ?? 1_000;
  const consumer: Consumer = await retryTransient(() => js.consumers.get(stream, durable));
  const tracker = options.poison && poisonTracker(options.poison, { stream, durable, logger });
  const queue: JsMsg[] = [];
  const arrivedAt: number[] = [];
  const weigh = options.weight ?? (() => 1);
  let queued = 0;
  const lingerMs = options.lingerMs ?? 0;
  const idle: Array<() => void> = [];
  const wake = () => {
    for (const resume of idle.splice(0)) resume();
  };
  let stopping = false;

  const maxMessages = options.bufferMessages ?? Math.max(batchSize * 2, 256);
  const arrive = (msg: JsMsg) => {
    options.onArrival?.(msg);
    queue.push(msg);
    arrivedAt.push(performance.now());
    queued += weigh(msg);
    wake();
  };
  const bounded = options.readAhead && boundedPuller(stream, durable, options.readAhead, maxMessages, arrive, logger);
  const messages: ConsumerMessages | undefined = bounded ? undefined : await consumer.consume({ expires: PULL_EXPIRES_MS, max_messages: maxMessages, callback: arrive });

  const loop = async (): Promise<void> => {
    for (;;) {
      if (queue.length === 0) {
        if (stopping) return;
        await new Promise<void>((resolve) => idle.push(resolve));
        continue;
      }
      const lingerLeft = arrivedAt[0]! + lingerMs - performance.now();
      if (lingerLeft > 0 && queued < batchSize && !stopping) {
        await Promise.race([new Promise<void>((resolve) => idle.push(resolve)), new Promise((resolve) => setTimeout(resolve, lingerLeft))]);
        continue;
      }
      const n = batchLength(queue, batchSize, options.weight);
      const batch = queue.splice(0, n);
      arrivedAt.splice(0, n);
      for (const msg of batch) queued -= weigh(msg);
      try {
        await handleBatch(batch);
      } finally {
        // handled, or nak'd to come again in a later pull: either way no longer held here
        bounded?.release(batch);
      }
    }
  };
  const handleBatch = async (batch: JsMsg[]): Promise<void> => {
    try {
      await handler(batch);
      tracker?.passed();
    } catch (err) {
      if (tracker && batch.length > 1 && batch.some((msg) => deliveryCount(msg) > 1)) {
        // it failed before too: find out which message fails, instead of failing the batch for ever
        for (const msg of batch) await handleAlone(msg);
        return;
      }
      if (tracker && batch.length === 1) {
        await tracker.failed(batch[0]!, err, retryDelayMs);
        return;
      }
      logger.error({ err, stream, durable, size: batch.length }, 'batch failed; messages will be redelivered');
      for (const msg of batch) msg.nak(retryDelayMs);
    }
  };
  const handleAlone = async (msg: JsMsg): Promise<void> => {
    try {
      await handler([msg]);
      tracker!.passed();
    } catch (err) {
      await tracker!.failed(msg, err, retryDelayMs);
    }
  };
  const done = Promise.all(Array.from({ length: options.concurrency ?? 1 }, () => loop())).then(() => undefined);

  return {
    done,
    stop: async () => {
      stopping = true;
      if (messages) await messages.close();
      else bounded!.stop();
      wake();
      await done;
    },
  };
}

/**
 * Sizing for consumers of EVENTS, whose messages carry up to `eventsPerMessage` events:
 * a batch counts events, and each pull asks for about two batches of full packs, or
 * at least 500 messages, as packs under a steady load are smaller than full.
 */
export function eventBatching(batchSize: number, eventsPerMessage: number): Pick<BatchConsumerOptions, 'batchSize' | 'weight' | 'bufferMessages'> {
  return { batchSize, weight: (msg) => eventCount(msg.headers), bufferMessages: Math.max(500, Math.ceil((2 * batchSize) / eventsPerMessage)) };
}

/** How many messages from the front of the queue make one batch: at least one, at most `limit` by weight. */
function batchLength(queue: JsMsg[], limit: number, weight: ((msg: JsMsg) => number) | undefined): number {
  if (!weight) return Math.min(queue.length, limit);
  let total = 0;
  let n = 0;
  while (n < queue.length && (n === 0 || total + weight(queue[n]!) <= limit)) total += weight(queue[n++]!);
  return n;
}
