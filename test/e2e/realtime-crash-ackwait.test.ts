import { describe, expect, it } from 'vitest';
import { spawnRole, useProcessStack } from '../harness/process-stack.ts';
import { exited, terminate } from '../harness/processes.ts';
import {
  expectViewEqualsReference,
  highestFolded,
  orderedSales,
  processorAckFloor,
  publishSteadily,
  realtimeCheckpoints,
  realtimeSalesReport,
  waitForEveryEventAcked,
  type Checkpoint,
} from '../harness/realtime-view.ts';
import { waitFor } from '../harness/streams.ts';

/**
 * A crash with an ackWait far above the out-of-orderness: the killed instance's unacked
 * messages come back 10 s later (then wait out its 20 s liveness at the gate), far past the
 * 2 s out-of-orderness and the 5 s start-up hold, while the other instance folds the rest of the stream at once. Each
 * message's event times move the watermark only once the ack floor covers it, so those
 * redeliveries are never behind it: not one event refused.
 */
const settings = {
  nats: { ackWait: '10s' },
  processor: { batchSize: 200, outOfOrderness: '2s', liveness: '20s' },
  ingest: { eventsPerMessage: 10 },
  reports: [realtimeSalesReport],
};

const stack = useProcessStack(settings, 'tidemark-rt-crash-');

describe('realtime view across a crash with ackWait far above outOfOrderness', () => {
  it('one of two processors killed mid-stream: the other folds the rest at once, yet every window equals the reference and nothing is refused', async () => {
    const { nc, jsm, client, db } = stack;
    const checkpoints = () => realtimeCheckpoints(client, db);
    // four stores, each sending its sales in occurredAt order over the last 40 minutes, interleaved
    const { events, messages } = orderedSales(Date.now(), 4, 3_000, 'ack');
    // two processors, both up before the burst (a slow start on a loaded machine must not change the scenario)
    const processors = [spawnRole(stack, 'processor'), spawnRole(stack, 'processor')];
    let survivor = processors[1]!;
    try {
      await waitFor(async () => (await checkpoints()).length >= 2, 180_000, 'both processors to be up');
      // a steady flow (200 events every 250 ms, about 15 s), so that the kill lands in the middle of it
      const flow = publishSteadily(nc, messages);
      // one is killed once it has written a checkpoint naming messages not yet acked: folded, unacked, in doubt
      let dead: Checkpoint | undefined;
      await waitFor(async () => {
        const floor = await processorAckFloor(jsm);
        dead = (await checkpoints()).find((c) => c.folded.some(([, to]) => Number(to) > floor));
        return dead !== undefined;
      }, 120_000, 'a checkpoint ahead of the ack floor');
      const victim = processors.find((p) => dead!.instance.includes(`-${p.pid}-`))!;
      survivor = processors.find((p) => p !== victim)!;
      victim.kill('SIGKILL');
      await exited(victim);
      const floorAtKill = await processorAckFloor(jsm);
      dead = (await checkpoints()).find((c) => c.instance === dead!.instance)!;
      expect(highestFolded(dead)).toBeGreaterThan(floorAtKill);
      expect(flow.sent()).toBeLessThan(messages.length);
      // the survivor folds and writes messages past the dead one's while those are still in doubt (the floor stuck below them);
      // looked for while the flow goes on: once it ends, the dead one's messages may already be folded again and acked
      const overtaken = waitFor(async () => {
        const other = (await checkpoints()).find((c) => c.instance.includes(`-${survivor.pid}-`));
        return highestFolded(other) > highestFolded(dead) + 100 && (await processorAckFloor(jsm)) < highestFolded(dead);
      }, 60_000, 'the survivor to fold newer messages while the dead one\'s are unacked');
      await Promise.all([flow.done, overtaken]);

      // every message acked: every fold that counts is written (an ack waits for the checkpoint naming it)
      await waitForEveryEventAcked(jsm, 240_000);
      await expectViewEqualsReference(client, db, events, 'ack');
    } finally {
      for (const p of processors) if (p.exitCode === null && p.signalCode === null) await terminate(p);
    }
    expect(survivor.exitCode).toBe(0);
  }, 420_000);
});
