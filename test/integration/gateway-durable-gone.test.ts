import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { startNatsGateway } from '../../src/ingest/nats-gateway.ts';
import { boundedPuller } from '../../src/nats/read-ahead.ts';
import { LEASE_BUCKET } from '../../src/nats/lease.ts';
import { ensureTopology, rewindGatewayConsumer } from '../../src/nats/topology.ts';
import { testConfig } from '../harness/config.ts';
import { startTestIngest, type TestIngest } from '../harness/ingest.ts';
import { capturingLogger } from '../harness/log.ts';
import { startConnectedNats } from '../harness/nats-client.ts';
import { eventsOnStream, streamCount, waitFor } from '../harness/streams.ts';

/**
 * The gateway's durable on INGEST gone: what a rewind leaves when its delete went
 * through and its adds did not (an election on a loaded cluster), or what
 * `nats consumer rm` leaves, found when the gateway starts reading again or while it
 * reads. The gateway makes it anew and goes on. Before, every later rewind failed on
 * the missing durable; and a durable removed under a reading gateway was never noticed
 * at all (a pull on it is answered by nothing): nothing more was forwarded until the
 * process was restarted (measured: 60 s, 12,000 raw messages left behind).
 */
const config = testConfig({ ingest: { lease: '1s' } });

async function publish(ingest: TestIngest, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) ingest.nc.publish('ingest.gone.sale', JSON.stringify({ id: `gone-${i}`, occurredAt: Date.now() - 1_000, data: { amount: '1.00' } }));
  await ingest.nc.flush();
}

const forwarded = (ingest: TestIngest) => waitFor(async () => {
  const raw = await streamCount(ingest.jsm, 'INGEST');
  return (await ingest.jsm.consumers.info('INGEST', 'gateway')).ack_floor.stream_seq === raw;
}, 30_000, 'the gateway to ack every raw message');

/** EVENTS holds `count` events, no id twice. */
async function expectEachOnce(ingest: TestIngest, count: number): Promise<void> {
  const ids = (await eventsOnStream(ingest.js, ingest.jsm)).map((e) => e.id);
  expect(ids.length).toBe(count);
  expect(new Set(ids).size).toBe(count);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the gateway durable on INGEST found gone', () => {
  it('while the gateway reads it: noticed within seconds, made anew from the floor acked, every event forwarded once, without pulling in a loop', async () => {
    const { logger, lines } = capturingLogger();
    const ingest = await startTestIngest(config, logger);
    try {
      const total = 600;
      // a steady flow: 20 events every 100 ms
      const flowing = (async () => {
        for (let from = 0; from < total; from += 20) {
          await publish(ingest, from, from + 20);
          await sleep(100);
        }
      })();
      await waitFor(() => ingest.gateway.stats.accepted >= 100, 30_000, 'the gateway to forward the first events');
      const before = lines.length;
      await ingest.jsm.consumers.delete('INGEST', 'gateway');
      const deletedAt = performance.now();
      // a pull on a missing durable is answered by nothing: a gateway that does not notice forwards nothing more until restarted
      const made = await waitFor(() => ingest.jsm.consumers.info('INGEST', 'gateway'), 15_000, 'the durable to be made anew');
      const noticedInMs = performance.now() - deletedAt;
      await flowing;
      await forwarded(ingest);
      await expectEachOnce(ingest, total);
      expect(made.config.deliver_policy).toBe('by_start_sequence');
      expect(made.config.opt_start_seq).toBeGreaterThan(1);
      expect(noticedInMs).toBeLessThan(10_000);
      const after = lines.slice(before);
      // one line about the incident, not one per pull
      expect(after.filter((l) => l.msg === 'the INGEST durable is gone: making it anew from the floor acked here')).toHaveLength(1);
      expect(after.filter((l) => l.msg === 'pull request ended by the server').length).toBeLessThanOrEqual(2);
      expect(after.filter((l) => (l.level as number) >= 40).length).toBeLessThanOrEqual(4);
    } finally {
      await ingest.dispose();
    }
  }, 90_000);

  it('by a running gateway reading anew: made anew from the floor it acked, every later event forwarded once', async () => {
    const ingest = await startTestIngest(config);
    try {
      await publish(ingest, 0, 50);
      await forwarded(ingest);
      await ingest.jsm.consumers.delete('INGEST', 'gateway');
      // another holder writes the lease: the gateway stops reading and, when the lease expires, reads anew
      await (await new Kvm(ingest.js).open(LEASE_BUCKET)).put('gateway', JSON.stringify({ holder: 'someone-else', at: new Date().toISOString() }));
      await publish(ingest, 50, 100);
      await forwarded(ingest);
      expect((await ingest.jsm.consumers.info('INGEST', 'gateway')).config.opt_start_seq).toBe(51);
      await expectEachOnce(ingest, 100);
    } finally {
      await ingest.dispose();
    }
  }, 90_000);

  it('made anew by someone else from the stream\'s start: a rewind goes on from the floor this gateway acked, not from the start again', async () => {
    const ingest = await startTestIngest(config);
    try {
      await publish(ingest, 0, 50);
      await forwarded(ingest);
      await ingest.gateway.stop();
      const { created } = await ingest.jsm.streams.info('INGEST');
      await ingest.jsm.consumers.delete('INGEST', 'gateway');
      // what the next `tidemark init` or role start does: the durable as configured, delivering from the start
      await ensureTopology(ingest.jsm, config);
      const rewound = await rewindGatewayConsumer(ingest.jsm, config, { seq: 50, stream: created });
      expect(rewound.floor).toBe(50);
      const made = await ingest.jsm.consumers.info('INGEST', 'gateway');
      expect(made.config.deliver_policy).toBe('by_start_sequence');
      expect(made.config.opt_start_seq).toBe(51);
    } finally {
      await ingest.dispose();
    }
  }, 90_000);

  it('by a gateway just started: made anew from the stream\'s start, what was forwarded before dropped as copies', async () => {
    const ingest = await startTestIngest(config);
    try {
      await publish(ingest, 0, 40);
      await forwarded(ingest);
      await ingest.gateway.stop();
      await ingest.jsm.consumers.delete('INGEST', 'gateway');
      await publish(ingest, 40, 60);
      const next = await startNatsGateway({ js: ingest.js, nc: ingest.nc, config, logger: pino({ level: 'silent' }) });
      try {
        await forwarded(ingest);
      } finally {
        await next.stop();
      }
      expect((await ingest.jsm.consumers.info('INGEST', 'gateway')).config.deliver_policy).toBe('all');
      await expectEachOnce(ingest, 60);
    } finally {
      await ingest.dispose();
    }
  }, 90_000);

  it('before a pull reaches it: the pull is answered by nothing, and the bounded puller says so after one expiry, pulling once an expiry meanwhile', async () => {
    const nats = await startConnectedNats(config);
    try {
      await nats.jsm.consumers.delete('INGEST', 'gateway');
      // the pull requests, seen from a second connection: it answers none of them, as nothing else does
      const watch = await connect({ servers: nats.server.url });
      const pulls: number[] = [];
      const started = performance.now();
      const sub = watch.subscribe('$JS.API.CONSUMER.MSG.NEXT.INGEST.gateway', { callback: () => void pulls.push(performance.now() - started) });
      await watch.flush();
      const told: number[] = [];
      const puller = boundedPuller('INGEST', 'gateway', { nc: nats.nc, maxBytes: 4 << 20, maxMessageBytes: 1 << 20, onMaybeGone: () => void told.push(performance.now() - started) }, 100, () => undefined, pino({ level: 'silent' }));
      try {
        await waitFor(() => told.length > 0, 15_000, 'the puller to say the durable may be gone');
      } finally {
        puller.stop();
        sub.unsubscribe();
        await watch.close();
      }
      expect(told[0]).toBeGreaterThan(5_000);
      expect(pulls.length).toBeLessThanOrEqual(2);
    } finally {
      await nats.dispose();
    }
  }, 30_000);

  it('with INGEST itself made anew: read from the new stream\'s first message, none of it skipped', async () => {
    const ingest = await startTestIngest(config);
    try {
      await publish(ingest, 0, 50);
      await forwarded(ingest);
      // what an operator's `nats stream rm` + `nats stream add` leaves: the stream numbers from 1 again, no durable on it
      const { config: stream } = await ingest.jsm.streams.info('INGEST');
      await ingest.jsm.streams.delete('INGEST');
      await ingest.jsm.streams.add(stream);
      await publish(ingest, 50, 80);
      await waitFor(async () => (await eventsOnStream(ingest.js, ingest.jsm)).length >= 80, 30_000, "the new INGEST's 30 events on EVENTS");
      await expectEachOnce(ingest, 80);
    } finally {
      await ingest.dispose();
    }
  }, 90_000);
});

