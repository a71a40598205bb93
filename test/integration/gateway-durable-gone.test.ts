import { Kvm } from '@nats-io/kv';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { startNatsGateway } from '../../src/ingest/nats-gateway.ts';
import { LEASE_BUCKET } from '../../src/nats/lease.ts';
import { testConfig } from '../harness/config.ts';
import { startTestIngest, type TestIngest } from '../harness/ingest.ts';
import { eventsOnStream, streamCount, waitFor } from '../harness/streams.ts';

/**
 * The gateway's durable on INGEST found gone when the gateway starts reading again: what
 * a rewind leaves when its delete went through and its adds did not (an election on a
 * loaded cluster), or what `nats consumer rm` leaves. The gateway makes it anew and goes
 * on; before, every later rewind failed on the missing durable and nothing more was
 * forwarded until the process was restarted.
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

describe('the gateway durable on INGEST found gone', () => {
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
});
