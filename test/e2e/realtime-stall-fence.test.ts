import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import type { FenceValue } from '../../src/processors/realtime/fence.ts';
import { spawnRoleCaptured, useProcessStack } from '../harness/process-stack.ts';
import { terminateWithin } from '../harness/processes.ts';
import { expectViewEqualsReference, fenceKeyReader, orderedSales, publishSteadily, REALTIME_WINDOW, realtimeSalesReport, realtimeViewRows } from '../harness/realtime-view.ts';
import { waitFor } from '../harness/streams.ts';
import { referenceWindows } from '../support/window-reference.ts';

/**
 * A processor stopped (SIGSTOP) mid-stream for longer than ackWait and the liveness
 * (processor.liveness, 6 s here), while it holds folded, unacked messages: the other one gets them
 * again, fences it through the KV arbiter, writes the fence row and folds them. When the
 * stopped one resumes it writes its panes and a checkpoint naming those same messages,
 * but its compare-and-set finds its key fenced: nothing of it is acked, its rows above
 * the fence do not count, it goes on as a new instance. Every window equals the
 * reference: no event counted twice, none lost.
 *
 * Every wait has a bound inside the test's own, and one that runs out fails with the state
 * of things (each process's last lines about fences and unacked batches, the consumer's
 * progress, the fence keys, the view against the reference), so a hang explains itself.
 */
const settings = {
  nats: { ackWait: '8s' },
  processor: { batchSize: 200, outOfOrderness: '2s', idleTimeout: '1s', liveness: '6s' },
  ingest: { eventsPerMessage: 10 },
  reports: [realtimeSalesReport],
};
const TEST_MS = 480_000;
/** what the test's own waits may take in all; the rest is for the last look, the state and the clean-up */
const WAITS_MS = TEST_MS - 70_000;
/** one look at the system (a request, a query) that takes longer than this counts as failed */
const LOOK_MS = 20_000;

const stack = useProcessStack(settings, 'tidemark-rt-stall-');

// the test's own finally does not run when vitest gives up on it: a stopped or running processor must not outlive the file
const spawned: ChildProcess[] = [];
afterAll(() => {
  for (const child of spawned) if (child.exitCode === null && child.signalCode === null) { child.kill('SIGCONT'); child.kill('SIGKILL'); }
});

const bounded = <T>(work: Promise<T>, what: string): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${LOOK_MS} ms`)), LOOK_MS);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
};
const highest = (v: FenceValue | undefined) => Math.max(0, ...(v?.folded ?? []).map(([, to]) => to));

describe('realtime view across a processor stalled past the liveness', () => {
  it('one of two processors SIGSTOPped mid-stream past ackWait and the liveness, then resumed: it is fenced, every window equals the reference', async () => {
    const { nc, js, jsm, client, db } = stack;
    const started = Date.now();
    const keys = fenceKeyReader(js);
    const consumerInfo = () => bounded(jsm.consumers.info('EVENTS', 'processor'), 'consumer info');
    const { events, messages } = orderedSales(Date.now(), 4, 2_000, 'stall');
    // each event is in two windows (10 minutes every 5)
    const referenceTotal = [...referenceWindows([REALTIME_WINDOW], events).values()].reduce((n, f) => n + f.events, 0);
    const captured = [spawnRoleCaptured(stack, 'processor'), spawnRoleCaptured(stack, 'processor')];
    const processors = captured.map((c) => c.child);
    spawned.push(...processors);
    let victim = '';
    let victimPid: number | undefined;
    let resumed = false;

    /** What each part of the system says now; each look bounded, a failed one says why. */
    const state = async (): Promise<string> => {
      const look = async (what: string, read: () => Promise<unknown>) => {
        try {
          return `${what}: ${JSON.stringify(await bounded(read(), what))}`;
        } catch (err) {
          return `${what}: (${(err as Error).message})`;
        }
      };
      const lines = captured.map((c) => {
        const pid = c.child.pid!;
        const role = pid === victimPid ? (resumed ? 'victim, resumed' : 'victim, stopped') : victimPid ? 'survivor' : 'processor';
        const said = `${c.stdout()}\n${c.stderr()}`.split('\n').filter((line) => /fence|dropped|unacked|checkpoint|realtime|error|failed/i.test(line));
        return [`pid ${pid} (${role}; exit ${c.child.exitCode ?? c.child.signalCode ?? 'none'}), last of ${said.length} lines on fences, checkpoints, errors:`, ...said.slice(-8).map((line) => `  ${line.slice(0, 400)}`)].join('\n');
      });
      const now = Date.now();
      const looks = await Promise.all([
        look('consumer', async () => {
          const info = await jsm.consumers.info('EVENTS', 'processor');
          return { ack_floor: info.ack_floor.stream_seq, delivered: info.delivered.stream_seq, num_pending: info.num_pending, num_ack_pending: info.num_ack_pending, num_redelivered: info.num_redelivered, num_waiting: info.num_waiting };
        }),
        look('fence keys', async () => [...(await keys())].map(([key, v]) => ({ key, state: v.state, n: v.n, ageMs: now - v.at, sinceAgeMs: v.since === undefined ? null : now - v.since, highest: highest(v) }))),
        look('view', async () => {
          const rows = await realtimeViewRows(client, db, 'stall');
          return { events: rows.reduce((n, r) => n + Number(r.events), 0), refused: rows.reduce((n, r) => n + Number(r.late_refused), 0), reference: referenceTotal };
        }),
      ]);
      return [`state after ${Math.round((now - started) / 1000)} s (victim ${victim || 'not chosen'}):`, ...lines, ...looks].join('\n');
    };
    /** Waits for `check` within `ms` and what is left of the test's waits; a miss fails with the state. */
    const step = async <T>(what: string, ms: number, check: () => Promise<T | undefined | false>): Promise<T> => {
      const left = started + WAITS_MS - Date.now();
      try {
        const value = await waitFor(() => bounded(check(), what), Math.max(0, Math.min(ms, left)), what);
        console.log(`realtime-stall-fence: ${what} after ${Math.round((Date.now() - started) / 1000)} s`);
        return value;
      } catch (err) {
        const text = await state();
        console.log(text);
        throw new Error(`${(err as Error).message}${ms > left ? ' (the test\'s own bound)' : ''}\n${text}`);
      }
    };

    let codes: Array<number | null | 'killed'> = [];
    try {
      await step('both processors to be registered', 180_000, async () => [...(await keys()).values()].filter((v) => v.state === 'live').length >= 2);
      const flow = publishSteadily(nc, messages);
      // stopped once it has committed a checkpoint naming messages not yet acked: it holds messages in doubt
      await step('a committed checkpoint ahead of the ack floor', 120_000, async () => {
        const floor = (await consumerInfo()).ack_floor.stream_seq;
        for (const [id, value] of await keys()) {
          if (value.state !== 'live' || highest(value) <= floor) continue;
          const child = processors.find((p) => id.includes(`-${p.pid}-`));
          if (!child) continue;
          victim = id;
          victimPid = child.pid!;
          process.kill(victimPid, 'SIGSTOP');
          return true;
        }
        return false;
      });
      await step('every event published', 120_000, async () => (await flow.done, true));
      // the other one takes it for dead, fences it and folds its messages: the ack floor passes what the stopped one held
      await step('the stopped processor to be fenced', 120_000, async () => (await keys()).get(victim)?.state === 'fenced');
      const fence = (await bounded(keys(), 'fence keys')).get(victim)!;
      await step('the survivor to fold and ack the stopped one\'s messages', 120_000, async () => {
        const info = await consumerInfo();
        return info.num_pending === 0 && info.ack_floor.stream_seq > highest(fence);
      });
      const fenceQuery = client.query({ query: `SELECT checkpoint FROM ${db}.realtime_fences FINAL WHERE instance = {i:String}`, query_params: { i: victim }, format: 'JSONEachRow' });
      const fenceRows = (await bounded(fenceQuery.then((r) => r.json<{ checkpoint: string }>()), 'fence rows')).map((r) => Number(r.checkpoint));
      expect(fenceRows).toEqual([fence.n]);

      // resumed: its commit finds the key fenced; it goes on under a new id
      process.kill(victimPid!, 'SIGCONT');
      resumed = true;
      await step('the resumed processor to rejoin as a new instance', 120_000, async () => (await keys()).get(`${victim}.1`)?.state === 'live');
      expect((await bounded(keys(), 'fence keys')).get(victim)).toMatchObject({ state: 'fenced', n: fence.n });

      await step('every EVENTS message acked', 240_000, async () => {
        const info = await consumerInfo();
        return info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.stream_seq > 0;
      });
      await step('the realtime view to account for every event', 60_000, async () => {
        const rows = await realtimeViewRows(client, db, 'stall');
        return rows.reduce((n, r) => n + Number(r.events) + Number(r.late_refused), 0) >= referenceTotal;
      });
      try {
        await expectViewEqualsReference(client, db, events, 'stall');
      } catch (err) {
        const text = await state();
        console.log(text);
        throw new Error(`${(err as Error).message}\n${text}`);
      }
      console.log(await state());
    } finally {
      if (victimPid !== undefined && !resumed) process.kill(victimPid, 'SIGCONT');
      codes = await Promise.all(processors.map((p) => terminateWithin(p, 15_000)));
    }
    expect(codes).toEqual([0, 0]);
  }, TEST_MS);
});
