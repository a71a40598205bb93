import { describe, expect, it } from 'vitest';
import { useGatewayFixture } from '../harness/gateway-processes.ts';
import { exited, terminate } from '../harness/processes.ts';
import { eventsOnStream, streamCount, waitFor } from '../harness/streams.ts';

const VALID = 30_000;
const INVALID = 300;
const settings = { nats: { ackWait: '1s' }, ingest: { batchSize: 500 } };
const fixture = useGatewayFixture(settings);

describe('gateway killed with SIGKILL mid-batch', () => {
  it('loses nothing after a restart, and no event reaches EVENTS twice', async () => {
    const { nc, js, jsm, forwarded } = fixture;
    const now = Date.now();
    for (let i = 0; i < VALID; i++) {
      nc.publish(`ingest.store-${i % 7}.sale`, JSON.stringify({ id: `e-${i}`, occurredAt: now - i, data: { amount: `${i}.10` } }));
      if (i % 100 === 0) nc.publish('ingest.store-0.sale', `{"id": "bad-${i / 100}", "occurredAt": `);
    }
    await nc.flush();
    await waitFor(async () => (await streamCount(jsm, 'INGEST')) === VALID + INVALID, 60_000, 'INGEST to hold every raw message');

    const first = fixture.startGateway();
    await waitFor(async () => (await forwarded()) > 2_000, 30_000, 'the gateway to start forwarding');
    first.kill('SIGKILL');
    await exited(first);
    expect(await forwarded()).toBeLessThan(VALID);

    const second = fixture.startGateway();
    try {
      await waitFor(async () => {
        const info = await jsm.consumers.info('INGEST', 'gateway');
        return info.num_pending === 0 && info.num_ack_pending === 0;
      }, 60_000, 'the restarted gateway to drain INGEST');
    } finally {
      expect(await terminate(second)).toBe(0);
    }

    // a batch whose packs were stored but whose raw messages were not yet acked comes
    // back to the new gateway, which knows their events: it refilled its recent ids from EVENTS
    const events = (await eventsOnStream(js, jsm)).map((e) => e.id);
    expect(new Set(events).size).toBe(VALID);
    expect(events.length - VALID, 'copies on EVENTS').toBe(0);
    expect(await streamCount(jsm, 'DLQ')).toBe(INVALID);
  }, 120_000);
});
