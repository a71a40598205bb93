import { describe, expect, it } from 'vitest';
import { eventIdentity } from '../../src/core/identity.ts';
import { spawnRole, useProcessStack } from '../harness/process-stack.ts';
import { exited, terminate, waitForDailyView } from '../harness/processes.ts';
import { expectViewEqualsReference, orderedSales, REALTIME_WINDOW, realtimeCheckpoints, realtimeSalesReport, realtimeViewRows } from '../harness/realtime-view.ts';
import { eventsOnStream, waitFor } from '../harness/streams.ts';

const settings = {
  // a message whose holder died comes again within 3 s, inside the restarted instance's start-up hold (idleTimeout)
  nats: { ackWait: '3s' },
  // a dead instance is known as such after 10 s without a checkpoint (30 s by default: the test need not wait that long)
  processor: { batchSize: 500, liveness: '10s' },
  // small packs: many messages, so a kill lands between folded, written and acked ones
  ingest: { eventsPerMessage: 10 },
  reports: [realtimeSalesReport],
};

const stack = useProcessStack(settings, 'tidemark-rt-once-');
const checkpoints = () => realtimeCheckpoints(stack.client, stack.db);
/** How many distinct events EVENTS holds: what an earlier test left there adds to what a test waits for. */
const storedEvents = async () => new Set((await eventsOnStream(stack.js, stack.jsm)).map((e) => eventIdentity(e.source, e.id))).size;

describe('realtime view exactly once', () => {
  it('a processor killed with SIGKILL between folding and writing: after restart every window equals the reference', async () => {
    const { nc, js, jsm, client, db } = stack;
    const { events, messages } = orderedSales(Date.now(), 3, 6_000, 'crash');
    // what an earlier test of the file left (its events, its instances' checkpoints) is not this test's
    const [already, before] = [await storedEvents(), new Set((await checkpoints()).map((c) => c.instance))];
    const ours = async () => (await checkpoints()).filter((c) => !before.has(c.instance));
    let processor = spawnRole(stack, 'processor');
    for (const msg of messages) nc.publish(msg.subject, msg.body);
    await nc.flush();

    // kill once the instance has written a checkpoint naming messages not yet acked: their
    // redeliveries must be skipped, while messages folded since that write must be folded again
    await waitFor(async () => {
      const floor = (await jsm.consumers.info('EVENTS', 'processor')).ack_floor.stream_seq;
      return (await ours()).some((c) => c.folded.some(([, to]) => Number(to) > floor));
    }, 150_000, 'a checkpoint ahead of the ack floor');
    processor.kill('SIGKILL');
    await exited(processor);
    const info = await jsm.consumers.info('EVENTS', 'processor');
    expect(info.ack_floor.stream_seq).toBeLessThan((await jsm.streams.info('EVENTS')).state.last_seq);
    const dead = (await ours())[0]!;
    const foldedAboveFloor = dead.folded.filter(([, to]) => Number(to) > info.ack_floor.stream_seq);
    expect(foldedAboveFloor.length).toBeGreaterThan(0);

    processor = spawnRole(stack, 'processor');
    try {
      await waitForDailyView(js, jsm, already + events.length);
      await expectViewEqualsReference(client, db, events, 'crash');
      expect(await ours()).toHaveLength(2);
    } finally {
      expect(await terminate(processor)).toBe(0);
    }
    // a stopped processor says so: no one waits for it, and it no longer holds windows open
    expect((await ours()).map((c) => Number(c.final)).sort()).toEqual([0, 1]);
  }, 360_000);

  it('two processors: the merged view is exact, and a window is closed only once both have closed it', async () => {
    const { nc, js, jsm, client, db } = stack;
    const { events, messages } = orderedSales(Date.now(), 4, 3_000, 'pair');
    const [already, before] = [await storedEvents(), new Set((await checkpoints()).map((c) => c.instance))];
    const processors = [spawnRole(stack, 'processor'), spawnRole(stack, 'processor')];
    try {
      // both are reading before the burst, so both get a share of it
      await waitFor(async () => (await checkpoints()).filter((c) => !before.has(c.instance)).length === 2, 60_000, 'both processors to be up');
      for (const msg of messages) nc.publish(msg.subject, msg.body);
      await nc.flush();
      await waitForDailyView(js, jsm, already + events.length);
      const rows = await expectViewEqualsReference(client, db, events, 'pair');
      // what the pipeline adds to a source's disorder (processor.outOfOrderness covers the rest): in
      // EVENTS order, how far an event is behind the latest of its source before it — measured 0 here
      const latest = new Map<string, number>();
      let disorder = 0;
      for (const e of (await eventsOnStream(js, jsm)).filter((e) => e.source.startsWith('pair-'))) {
        disorder = Math.max(disorder, (latest.get(e.source) ?? -Infinity) - e.occurredAt);
        latest.set(e.source, Math.max(latest.get(e.source) ?? -Infinity, e.occurredAt));
      }
      expect(disorder).toBe(0);
      expect(Math.max(...rows.map((r) => Number(r.instances)))).toBe(2);
      // read the view and the two live checkpoints in one query's time: closed = both watermarks past the end
      // live: not stopped (final), and a checkpoint at most the liveness older than the newest
      const closingNow = async () => {
        const cps = (await checkpoints()).filter((c) => c.watermarks.rt !== undefined && Number(c.final) === 0);
        const newest = Math.max(...cps.map((c) => Number(c.emitted_at)));
        const live = cps.filter((c) => Number(c.emitted_at) >= newest - 10_000);
        return { closing: Math.min(...live.map((c) => Number(c.watermarks.rt))), ours: live.filter((c) => !before.has(c.instance)).length };
      };
      await waitFor(async () => (await closingNow()).ours === 2, 30_000, 'both instances to have closed windows');
      const { closing } = await closingNow();
      const again = await realtimeViewRows(client, db, 'pair');
      const { closing: after } = await closingNow();
      // the watermarks may move between the reads: windows ending between the two readings can go either way
      for (const r of again) {
        const end = Number(r.start) + REALTIME_WINDOW.size;
        if (end <= closing) expect(Boolean(r.closed)).toBe(true);
        if (end > after) expect(Boolean(r.closed)).toBe(false);
      }
      expect(again.some((r) => r.closed) && again.some((r) => !r.closed)).toBe(true);
    } finally {
      for (const processor of processors) expect(await terminate(processor)).toBe(0);
    }
  }, 180_000);
});
