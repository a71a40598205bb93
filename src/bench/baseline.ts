import { AckPolicy, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { rawEvent } from './workload.ts';

/**
 * Bare JetStream on this machine, in this run: core-publish the bench's messages into
 * a stream, then consume and ack them with one Node pull consumer. The pipeline's
 * events/s is reported against this.
 */
export async function bareJetStream(nc: NatsConnection, js: JetStreamClient, count: number): Promise<{ publishMs: number; consumeMs: number; totalMs: number; eventsPerSecond: number }> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'BENCH', subjects: ['bench.>'] });
  await jsm.consumers.add('BENCH', { durable_name: 'bench', ack_policy: AckPolicy.Explicit, max_ack_pending: 20_000 });
  const now = Date.now();
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const { subject, body } = rawEvent(i, now);
    nc.publish(`bench.${subject}`, body);
    if (i % 10_000 === 0) await nc.flush();
  }
  await nc.flush();
  while ((await jsm.streams.info('BENCH')).state.messages < count) await new Promise((r) => setTimeout(r, 20));
  const published = performance.now();
  const consumer = await js.consumers.get('BENCH', 'bench');
  const messages = await consumer.consume({ max_messages: 2_000 });
  let seen = 0;
  for await (const msg of messages) {
    msg.ack();
    if (++seen === count) break;
  }
  await messages.close();
  const consumed = performance.now();
  await jsm.streams.delete('BENCH');
  const totalMs = consumed - started;
  return { publishMs: published - started, consumeMs: consumed - published, totalMs, eventsPerSecond: Math.round(count / (totalMs / 1000)) };
}
