import { AckPolicy, type ConsumerConfig, type JsMsg } from '@nats-io/jetstream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { runBatchConsumer } from '../../src/nats/batch-consumer.ts';
import type { PoisonPolicy } from '../../src/nats/poison.ts';
import { useConnectedNats } from '../harness/nats-client.ts';
import { waitFor } from '../harness/streams.ts';

const nats = useConnectedNats();
const logger = pino({ level: 'silent' });

/** A stream of the test's own on `<name in lower case>.>`, with explicit-ack durables (name: what else each sets). */
async function addStream(name: string, durables: Record<string, Partial<ConsumerConfig>>): Promise<void> {
  await nats.jsm.streams.add({ name, subjects: [`${name.toLowerCase()}.>`] });
  for (const [durable, options] of Object.entries(durables)) await nats.jsm.consumers.add(name, { durable_name: durable, ack_policy: AckPolicy.Explicit, ...options });
}

/** A consumer of the trickle that records the batches it hands over; `done` once all 20 are handled. */
async function recordBatches(durable: string, batchSize: number, lingerMs: number): Promise<{ sizes: number[]; arrivals: () => number; done: Promise<void> }> {
  const sizes: number[] = [];
  let arrivals = 0;
  const consumer = await runBatchConsumer({
    js: nats.js,
    stream: 'TRICKLE',
    durable,
    batchSize,
    lingerMs,
    logger,
    onArrival: () => arrivals++,
    handler: async (msgs: JsMsg[]) => {
      sizes.push(msgs.length);
      for (const msg of msgs) msg.ack();
    },
  });
  const done = waitFor(() => sizes.reduce((a, b) => a + b, 0) === 20, 60_000, `all 20 messages handled by ${durable}`).then(() => undefined).finally(() => consumer.stop());
  return { sizes, arrivals: () => arrivals, done };
}

const handled = (sizes: number[]): number => sizes.reduce((a, b) => a + b, 0);

/**
 * A consumer that retries a failed batch every 20 ms and files a message failing on its own past
 * 4 deliveries (recorded in `filed`, then terminated); `policy` adds to that (a sink probe).
 */
async function runFiling(stream: string, durable: string, policy: Pick<PoisonPolicy, 'healthy'>, handler: (msgs: JsMsg[]) => Promise<void>) {
  const filed: Array<{ data: string; reason: string }> = [];
  const consumer = await runBatchConsumer({
    js: nats.js,
    stream,
    durable,
    batchSize: 100,
    lingerMs: 20,
    logger,
    retryDelayMs: 20,
    poison: {
      maxDeliveries: 4,
      file: async (msg, reason) => {
        filed.push({ data: msg.string(), reason });
        msg.term();
      },
      ...policy,
    },
    handler,
  });
  return { consumer, filed };
}

const nothingPending = (stream: string, durable: string) =>
  waitFor(async () => {
    const info = await nats.jsm.consumers.info(stream, durable);
    return info.num_pending === 0 && info.num_ack_pending === 0;
  }, 60_000, 'nothing pending');

describe('batch consumer', () => {
  it('hands over what has arrived at once without a linger, and waits for a batch to fill with one', async () => {
    await addStream('TRICKLE', { eager: {}, filling: {}, lingering: {} });
    const eager = await recordBatches('eager', 100, 0);
    // a linger far longer than the test: only a full batch of 20 can end it
    const filling = await recordBatches('filling', 20, 600_000);
    // a linger shorter than the trickle: partial batches are handed over when it runs out
    const lingering = await recordBatches('lingering', 100, 300);
    for (let i = 0; i < 20; i++) {
      await nats.js.publish(`trickle.${i}`, `m${i}`);
      // the next message is sent only once the eager consumer has handed this one over on its own
      await waitFor(() => handled(eager.sizes) === i + 1, 60_000, `message ${i} handed over`);
    }
    await Promise.all([eager.done, filling.done, lingering.done]);
    expect(eager.sizes).toEqual(Array.from({ length: 20 }, () => 1));
    expect(eager.arrivals()).toBe(20);
    expect(filling.sizes).toEqual([20]);
    expect(filling.arrivals()).toBe(20);
    expect(handled(lingering.sizes)).toBe(20);
  });

  it("holds no more than the consumer's max_ack_pending, however slow its handler", async () => {
    await addStream('SLOW', { slow: { max_ack_pending: 50 } });
    const publishes = Array.from({ length: 400 }, (_, i) => nats.js.publish(`slow.${i}`, `s${i}`));
    await Promise.all(publishes);
    let arrived = 0;
    let handled = 0;
    let mostWaiting = 0;
    const consumer = await runBatchConsumer({
      js: nats.js,
      stream: 'SLOW',
      durable: 'slow',
      batchSize: 10,
      bufferMessages: 200,
      logger,
      onArrival: () => {
        arrived++;
        mostWaiting = Math.max(mostWaiting, arrived - handled);
      },
      handler: async (msgs: JsMsg[]) => {
        await new Promise((r) => setTimeout(r, 20));
        for (const msg of msgs) msg.ack();
        handled += msgs.length;
      },
    });
    try {
      await waitFor(() => handled >= 400, 60_000, 'every message handled');
    } finally {
      await consumer.stop();
    }
    // consume() refills its 200-message read-ahead as messages arrive; max_ack_pending (50) is the bound
    expect(mostWaiting).toBeGreaterThan(10);
    expect(mostWaiting).toBeLessThanOrEqual(50);
  });

  it('finds a message that fails on its own and files it, while the others are handled; an outage files nothing', async () => {
    await addStream('POISON', { p: { ack_wait: 5_000_000_000 } });
    const handled: string[] = [];
    let outage = true;
    const { consumer, filed } = await runFiling('POISON', 'p', {}, async (msgs) => {
      if (outage) throw new Error('ClickHouse is away');
      if (msgs.some((m) => m.string() === 'poison')) throw new Error('cannot take this one');
      for (const msg of msgs) {
        handled.push(msg.string());
        msg.ack();
      }
    });
    try {
      for (let i = 0; i < 10; i++) await nats.js.publish('poison.x', i === 4 ? 'poison' : `good-${i}`);
      // while everything fails, messages come again and again, and none is filed
      await waitFor(async () => (await nats.jsm.consumers.info('POISON', 'p')).num_redelivered >= 10, 60_000, 'redeliveries during the outage');
      expect(filed).toEqual([]);
      outage = false;
      await waitFor(() => filed.length === 1 && handled.length === 9, 60_000, 'the good handled and the poison filed');
      expect(handled.sort()).toEqual([0, 1, 2, 3, 5, 6, 7, 8, 9].map((i) => `good-${i}`));
      expect(filed[0]).toMatchObject({ data: 'poison', reason: expect.stringContaining('cannot take this one') });
      await nothingPending('POISON', 'p');
    } finally {
      await consumer.stop();
    }
  });

  it('on a quiet feed, files a lone message that keeps failing once its sink answers; while the sink is away it waits', async () => {
    await addStream('QUIET', { q: { ack_wait: 5_000_000_000 } });
    let sinkAnswers = false;
    let probes = 0;
    const healthy = async () => {
      probes++;
      return sinkAnswers;
    };
    const { consumer, filed } = await runFiling('QUIET', 'q', { healthy }, async () => {
      throw new Error('cannot take this one');
    });
    try {
      await nats.js.publish('quiet.x', 'lone-poison');
      // past maxDeliveries, the probe is asked and says the sink is away: nothing is filed
      await waitFor(async () => probes >= 3 && (await nats.jsm.consumers.info('QUIET', 'q')).num_redelivered >= 1, 60_000, 'deliveries past maxDeliveries with the sink away');
      expect(filed).toEqual([]);
      sinkAnswers = true;
      await waitFor(() => filed.length === 1, 60_000, 'the lone message filed once its sink answers');
      expect(filed[0]).toMatchObject({ data: 'lone-poison', reason: expect.stringContaining('while its sink answered') });
      await nothingPending('QUIET', 'q');
    } finally {
      await consumer.stop();
    }
  });
});
