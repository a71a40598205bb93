import { describe, expect, it } from 'vitest';
import { useGatewayFixture } from '../harness/gateway-processes.ts';
import { exited, terminate } from '../harness/processes.ts';
import { eventsOnStream, streamCount, waitFor } from '../harness/streams.ts';

const EVENTS = 20_000;
const settings = { nats: { ackWait: '1s' }, ingest: { batchSize: 500, lease: '1s' } };
const fixture = useGatewayFixture(settings);

describe('two gateways on INGEST', () => {
  it('one reads while the other stands by; the standby takes over from a SIGKILLed one and nothing is lost', async () => {
    const { nc, js, jsm, forwarded } = fixture;
    const gateways = [fixture.startGateway(), fixture.startGateway()];
    try {
      const active = await waitFor(fixture.holderPid, 60_000, 'a gateway to hold the lease');
      const first = gateways.find((g) => g.pid === active)!;
      const standby = gateways.find((g) => g !== first)!;
      expect(first).toBeDefined();

      const now = Date.now();
      const publishEvents = async (from: number, to: number) => {
        for (let i = from; i < to; i++) nc.publish(`ingest.store-${i % 5}.sale`, JSON.stringify({ id: `f-${i}`, occurredAt: now - i, data: { amount: '1.10' } }));
        await nc.flush();
      };
      // half before the kill, half after: the kill lands part-way however fast the first gateway is
      await publishEvents(0, EVENTS / 2);
      await waitFor(async () => (await forwarded()) > 2_000, 60_000, 'the active gateway to forward');
      // while both run, the lease has not moved: the standby took nothing
      expect(await fixture.holderPid()).toBe(active);

      first.kill('SIGKILL');
      await exited(first);
      expect(await forwarded()).toBeLessThan(EVENTS);
      await publishEvents(EVENTS / 2, EVENTS);
      await waitFor(async () => (await fixture.holderPid()) === standby.pid, 60_000, 'the standby to take the lease over');
      await waitFor(async () => {
        const info = await jsm.consumers.info('INGEST', 'gateway');
        return info.num_pending === 0 && info.num_ack_pending === 0 && info.ack_floor.stream_seq === EVENTS;
      }, 120_000, 'the standby to drain INGEST');

      const ids = (await eventsOnStream(js, jsm)).map((e) => e.id);
      expect(new Set(ids).size).toBe(EVENTS);
      // what the dead gateway had forwarded but not acked comes again, and the standby, which refilled its recent ids from EVENTS on taking over, drops it
      expect(ids.length - EVENTS, 'copies on EVENTS').toBe(0);
      expect(await streamCount(jsm, 'DLQ')).toBe(0);
      expect(await terminate(standby)).toBe(0);
      // a gateway that stops gives the lease up at once
      expect(await fixture.holderPid()).toBeUndefined();
    } finally {
      for (const g of gateways) if (g.exitCode === null && g.signalCode === null) g.kill('SIGKILL');
    }
  }, 300_000);
});
