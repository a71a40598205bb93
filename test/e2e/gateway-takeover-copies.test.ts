import type { ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { useGatewayFixture } from '../harness/gateway-processes.ts';
import { exited, terminate } from '../harness/processes.ts';
import { eventsOnStream, json, readAll, streamCount, waitFor } from '../harness/streams.ts';

const EVENTS = 5_000;
const CONFLICTS = 50;
const settings = { nats: { ackWait: '1s' }, ingest: { batchSize: 500, lease: '1s' } };
const fixture = useGatewayFixture(settings);

describe('copies of stored events sent again after the gateway lease moved', () => {
  it.each(['killed with SIGKILL', 'stopped'])('are dropped by the new holder after the first is %s: it refilled its recent ids from EVENTS; a different event under one of them goes to the DLQ', async (how) => {
    const { nc, js, jsm } = fixture;
    const now = Date.now();
    // the file's two cases share one server: each has its own ids, and counts from what the last left
    const tag = how === 'stopped' ? 's' : 'k';
    const base = { raw: await streamCount(jsm, 'INGEST'), events: (await eventsOnStream(js, jsm)).length, dlq: await streamCount(jsm, 'DLQ') };
    // copies are new INGEST messages, packed anew: their packs' message ids are new too, so only the recent ids can stop them
    const publish = async (amount: (i: number) => string) => {
      for (let i = 0; i < EVENTS; i++) nc.publish(`ingest.store-${i % 5}.sale`, JSON.stringify({ id: `${tag}-${i}`, occurredAt: now - i, data: { amount: amount(i) } }));
      await nc.flush();
    };
    const drained = (raw: number) =>
      waitFor(async () => {
        const info = await jsm.consumers.info('INGEST', 'gateway');
        return info.num_pending === 0 && info.num_ack_pending === 0 && info.ack_floor.stream_seq === raw;
      }, 120_000, `the gateway to ack ${raw} raw messages`);
    const stop = async (gateway: ChildProcess) => {
      if (how === 'stopped') return expect(await terminate(gateway)).toBe(0);
      gateway.kill('SIGKILL');
      await exited(gateway);
    };

    const first = fixture.startGateway();
    const gateways = [first];
    try {
      await waitFor(async () => (await fixture.holderPid()) === first.pid, 60_000, 'the first gateway to hold the lease');
      // a standby from the start: its memory of recent ids stays empty while the first one stores
      const second = fixture.startGateway();
      gateways.push(second);
      await publish(() => '1.10');
      await drained(base.raw + EVENTS);
      await stop(first);
      await waitFor(async () => (await fixture.holderPid()) === second.pid, 60_000, 'the second gateway to take the lease over');

      // every event again, the first CONFLICTS of them with different content
      await publish((i) => (i < CONFLICTS ? '9.99' : '1.10'));
      await drained(base.raw + 2 * EVENTS);

      const events = (await eventsOnStream(js, jsm)).filter((e) => e.id.startsWith(`${tag}-`));
      const ids = events.map((e) => e.id);
      expect(ids.length, `EVENTS holds ${ids.length - new Set(ids).size} copies`).toBe(EVENTS);
      expect(new Set(ids).size).toBe(EVENTS);
      expect(events.every((e) => e.data.amount === '1.10')).toBe(true);
      const dlq = (await readAll(js, jsm, 'DLQ')).slice(base.dlq).map((m) => json<{ code: string }>(m).code);
      expect(dlq).toEqual(Array.from({ length: CONFLICTS }, () => 'DUPLICATE_ID_CONFLICT'));
      expect(await streamCount(jsm, 'DLQ')).toBe(base.dlq + CONFLICTS);
      expect((await eventsOnStream(js, jsm)).length).toBe(base.events + EVENTS);
      expect(await terminate(second)).toBe(0);
    } finally {
      for (const g of gateways) if (g.exitCode === null && g.signalCode === null) g.kill('SIGKILL');
    }
  }, 300_000);
});
