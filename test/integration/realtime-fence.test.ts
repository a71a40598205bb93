import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import fc from 'fast-check';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { ErrorCodes } from '../../src/core/errors.ts';
import { FENCE_BUCKET, openArbiter, type Arbiter, type FenceValue } from '../../src/processors/realtime/fence.ts';
import { startRealtime, type ConsumerProgress, type Realtime } from '../../src/processors/realtime/realtime.ts';
import { replaceRealtimeView } from '../../src/sinks/clickhouse/realtime-table.ts';
import { Kvm } from '@nats-io/kv';
import { closeTestClickHouse, openTestClickHouse, type TestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { waitFor } from '../harness/streams.ts';
import { shiftedClock } from '../support/clock.ts';
import { centsText, referenceWindows, type ReferenceEvent } from '../support/window-reference.ts';

/**
 * The fence rule against a real nats-server (the KV arbiter) and chDB (the rows and the
 * view), in both orders of the race between a stalled instance committing checkpoint k+1
 * and a survivor fencing it at k: whichever compare-and-set wins, the message in doubt
 * counts once in realtime_latest.
 */
const LIVENESS = 30_000;
const WINDOW = { size: 10_000, slide: 5_000 };
const config = testConfig({ reports: [{ name: 'rtf', types: ['sale'], groupBy: ['source'], measures: { amount: { fn: 'sum', field: 'amount' } }, windows: [{ size: '10s', slide: '5s' }] }] });
const report = config.reports[0]!;
const logger = pino({ level: process.env.DEBUG_RT ? "debug" : "silent" });
const BASE = Math.floor(Date.now() / 10_000) * 10_000 - 60_000;

let ch: TestClickHouse;
let server: TestNats;
let nc: NatsConnection;
let js: JetStreamClient;
let arbiter: Arbiter;

beforeAll(async () => {
  [ch, server] = await Promise.all([openTestClickHouse(), startTestNats()]);
  nc = await connect({ servers: server.url });
  js = jetstream(nc);
  arbiter = await openArbiter(js, 1);
  await replaceRealtimeView(ch.client, ch.db, config.reports, LIVENESS);
});

afterAll(async () => {
  await nc?.close();
  await server?.dispose();
  await ch?.dispose();
  await closeTestClickHouse();
});

const sale = (source: string, i: number, cents: bigint): { event: TidemarkEvent; ref: ReferenceEvent } => {
  const occurredAt = BASE + 1_000 + i;
  return {
    event: { id: `${source}-${i}`, type: 'sale', source, key: null, occurredAt, receivedAt: occurredAt, data: { amount: centsText(cents) }, seq: i },
    ref: { source, id: `${source}-${i}`, occurredAt, cents },
  };
};

/** The view once it equals `expected` (within 30 s), or as it stands then: the caller compares, so a mismatch shows the rows. */
const settledView = async (source: string, expected: ReturnType<typeof referenceWindows>) => {
  const same = async () => JSON.stringify([...(await view(source))].sort()) === JSON.stringify([...expected].sort());
  await waitFor(same, 30_000, 'the view to equal the reference').catch(() => undefined);
  return view(source);
};
const expectViewToEqual = async (source: string, expected: ReturnType<typeof referenceWindows>) => expect(await settledView(source, expected)).toEqual(expected);

type ViewRow = { size_ms: string; start: string; group_key: string; events: string; amount: string };
const view = async (source: string) => {
  const rows = await (
    await ch.client.query({
      query: `SELECT size_ms, toUnixTimestamp64Milli(window_start) AS start, group_key, events, measures['amount'] AS amount FROM ${ch.db}.realtime_latest WHERE group_key = {g:String}`,
      query_params: { g: JSON.stringify([source]) },
      format: 'JSONEachRow',
    })
  ).json<ViewRow>();
  return new Map(rows.map((r) => [`${r.size_ms}/${WINDOW.slide}/${r.start}/${r.group_key}`, { events: Number(r.events), amount: r.amount }]));
};
const keyOf = async (instance: string): Promise<FenceValue | undefined> => (await (await new Kvm(js).open(FENCE_BUCKET)).get(instance))?.json<FenceValue>();
const fenceRows = async (instance: string) =>
  (await (await ch.client.query({ query: `SELECT checkpoint FROM ${ch.db}.realtime_fences FINAL WHERE instance = {i:String}`, query_params: { i: instance }, format: 'JSONEachRow' })).json<{ checkpoint: string }>()).map((r) => Number(r.checkpoint));
/** A's own row of a window as written, before the view's fence rule. */
const writtenEvents = async (instance: string) =>
  (await (await ch.client.query({ query: `SELECT max(events) AS events FROM ${ch.db}.realtime_windows FINAL WHERE instance = {i:String} AND size_ms > 0`, query_params: { i: instance }, format: 'JSONEachRow' })).json<{ events: string }>())[0]?.events;

const clock = shiftedClock();
/** `ackFloor`: the consumer's progress as a processor asks for it (its answers move the checkpoints' `since`); unset: none */
const make = (instance: string, arb: Arbiter, refreshMs: number, ackFloor?: () => Promise<ConsumerProgress>): Realtime =>
  startRealtime({ reports: [report], clickhouse: ch.client, db: ch.db, clock, logger, instance, refreshMs, idleMs: 200, outOfOrdernessMs: 0, maxSources: 100, recentIds: 1_000, livenessMs: LIVENESS, arbiter: arb, ackFloor });
/** A consumer nothing of which is acked yet, answering at once. */
const nothingAcked = async (): Promise<ConsumerProgress> => ({ floor: 0, delivered: 0 });

/**
 * One processor's connection stalled (its process paused, or the link slow) with EVENTS
 * messages in it, unread: every answer the server sends it meanwhile is behind them, so a
 * request times out, and the one answered first is read after them. `progress` is the
 * ack-floor request (it times out while messages are held); `commit` lands in the bucket,
 * then, as its answer is read, the held messages are read first.
 */
function stalledLink(): { hold: (...reads: Array<() => void>) => void; held: () => number; progress: () => Promise<ConsumerProgress>; arbiter: Arbiter } {
  let reads: Array<() => void> = [];
  return {
    hold: (...more) => void reads.push(...more),
    held: () => reads.length,
    progress: async () => {
      if (reads.length > 0) throw new Error('request timed out');
      return nothingAcked();
    },
    arbiter: {
      ...arbiter,
      commit: async (instance, next) => {
        const result = await arbiter.commit(instance, next);
        for (const read of reads.splice(0)) read();
        return result;
      },
    },
  };
}

const settle = async (done: () => boolean, what: string) => waitFor(() => done(), 60_000, what);

/** The shared arbiter, except that once held a commit stops between its insert and its compare-and-set until released. */
function commitGate(): { arbiter: Arbiter; hold: () => void; atCommit: Promise<void>; release: () => void } {
  let holding = false;
  let reachedCommit!: () => void;
  const atCommit = new Promise<void>((r) => (reachedCommit = r));
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  return {
    arbiter: {
      ...arbiter,
      commit: async (instance, next) => {
        if (holding) {
          reachedCommit();
          await released;
        }
        return arbiter.commit(instance, next);
      },
    },
    hold: () => { holding = true; },
    atCommit,
    release,
  };
}

// each test below uses sequences of its own: every instance's key stays in the one bucket and names what it folded
describe('realtime fence: the race between a stalled commit and a survivor fencing it', () => {
  it('fence first: the stalled instance inserted checkpoint k+1 but its compare-and-set loses; its row counts as of k, the survivor counts the message, once', async () => {
    const tag = randomBytes(3).toString('hex');
    const source = `fence-first-${tag}`;
    const [one, two] = [sale(source, 1, 1_050n), sale(source, 2, 20_000n)];
    // A commits through a gate the test opens: the pause between its insert and its compare-and-set
    const gate = commitGate();
    const paused = gate.arbiter;
    const aId = `fa-${tag}`;
    const a = make(aId, paused, 600_000);
    await a.start();
    a.arrive(1, false, [one.event]);
    clock.shift(200);
    await a.flush();
    expect((await keyOf(aId))?.n).toBe(1);
    await a.durable([1]);

    gate.hold();
    a.arrive(2, false, [two.event]);
    const aDurable = a.durable([2]).then(
      () => 'acked',
      (err: { code?: string }) => err.code,
    );
    const aFlush = a.flush();
    await gate.atCommit;
    // the insert of checkpoint 2 has landed: A's row holds both events
    expect(await writtenEvents(aId)).toBe('2');

    // A now looks dead; the survivor gets message 2 again
    clock.shift(LIVENESS + 1_000);
    const s = make(`fs-${tag}`, arbiter, 100);
    await s.start();
    s.arrive(2, true, [two.event]);
    let sDurable = false;
    void s.durable([2]).then(() => (sDurable = true));
    await settle(() => sDurable, 'the survivor to fold and commit message 2');
    expect(s.stats.folded).toBe(1);
    expect(await keyOf(aId)).toMatchObject({ state: 'fenced', n: 1, folded: [[1, 1]] });
    expect(await fenceRows(aId)).toEqual([1]);

    // A resumes: its compare-and-set finds the key fenced, so nothing of checkpoint 2 is acked
    gate.release();
    await aFlush;
    expect(await aDurable).toBe(ErrorCodes.REALTIME_FENCED);
    expect(a.instance).not.toBe(aId);
    expect((await keyOf(a.instance))?.state).toBe('live');

    const expected = referenceWindows([WINDOW], [one.ref, two.ref]);
    await expectViewToEqual(source, expected);
    await Promise.all([a.stop(), s.stop()]);
  }, 120_000);

  it('commit first: the survivor read A at k and its fence loses to A committing k+1; A counts the message, the survivor skips it', async () => {
    const tag = randomBytes(3).toString('hex');
    const source = `commit-first-${tag}`;
    const [one, two] = [sale(source, 1, 777n), sale(source, 2, 3_003n)];
    const aId = `ca-${tag}`;
    const a = make(aId, arbiter, 600_000);
    // A's checkpoints one after the other, as its refresh loop takes them
    let chain = Promise.resolve();
    const aFlush = () => (chain = chain.then(() => a.flush()));
    await a.start();
    a.arrive(1, false, [one.event]);
    clock.shift(200);
    await aFlush();
    a.arrive(2, false, [two.event]);
    clock.shift(LIVENESS + 1_000);
    // the survivor read A's key (checkpoint 1, old), then, before its compare-and-set, A commits checkpoint 2
    let fenceTried = 0;
    let fenceResult: FenceValue | undefined | 'not tried' = 'not tried';
    const racing: Arbiter = {
      ...arbiter,
      fence: async (instance, seen, by) => {
        if (instance === aId && fenceTried++ === 0) {
          await aFlush();
          fenceResult = await arbiter.fence(instance, seen, by);
          return fenceResult;
        }
        return arbiter.fence(instance, seen, by);
      },
    };
    const s = make(`cs-${tag}`, racing, 100);
    await s.start();
    s.arrive(2, true, [two.event]);
    let sDurable = false;
    void s.durable([2]).then(() => (sDurable = true));
    // A keeps committing (as a live instance does), so the survivor sees it alive and decides from its checkpoint
    await settle(() => {
      void aFlush();
      return sDurable;
    }, 'the survivor to decide message 2');
    expect(fenceResult).toBeUndefined();
    expect(fenceTried).toBe(1);
    expect(s.stats.folded).toBe(0);
    expect(s.stats.skipped).toBe(1);
    expect(await keyOf(aId)).toMatchObject({ state: 'live' });
    expect(await fenceRows(aId)).toEqual([]);
    await aFlush();
    await a.durable([2]);

    const expected = referenceWindows([WINDOW], [one.ref, two.ref]);
    await expectViewToEqual(source, expected);
    await Promise.all([a.stop(), s.stop()]);
  }, 120_000);
  it('a fenced instance leaves every batch holding a dropped message unacked until a later delivery of it is decided here (two batches of it: the second was acked, and its events lost)', async () => {
    const tag = randomBytes(3).toString('hex');
    const source = `dropped-${tag}`;
    const [one, two, three] = [sale(source, 1, 100n), sale(source, 2, 2_000n), sale(source, 3, 30_000n)];
    const gate = commitGate();
    const paused = gate.arbiter;
    const aId = `da-${tag}`;
    // refreshing as a processor does: its gate rounds follow the refresh
    const a = make(aId, paused, 100);
    await a.start();
    a.arrive(101, false, [one.event]);
    clock.shift(200);
    await a.flush();
    await a.durable([101]);
    // message 2 folded on its first delivery; A stalls between the insert of its next checkpoint and its compare-and-set
    gate.hold();
    a.arrive(102, false, [two.event]);
    const aFlush = a.flush();
    await gate.atCommit;
    clock.shift(LIVENESS + 1_000);
    // the survivor fences A while deciding a message of its own; message 2 it never gets
    const s = make(`ds-${tag}`, arbiter, 100);
    await s.start();
    s.arrive(103, true, [three.event]);
    await settle(() => s.stats.folded === 1, 'the survivor to fence A and fold message 3');
    await s.durable([103]);
    expect(await keyOf(aId)).toMatchObject({ state: 'fenced', folded: [[101, 101]] });
    // message 2 came again to A itself (its pull was still open) before it resumed
    a.arrive(102, true, [two.event]);
    gate.release();
    await aFlush;
    expect(a.instance).not.toBe(aId);
    // two batches hold message 2 (its first delivery and the second): neither may be acked
    await expect(a.durable([102])).rejects.toMatchObject({ code: ErrorCodes.REALTIME_FENCED });
    await expect(a.durable([102])).rejects.toMatchObject({ code: ErrorCodes.REALTIME_FENCED });
    // its next delivery is decided by the new instance: no committed checkpoint has it, so it is folded
    a.arrive(102, true, [two.event]);
    let aDurable = false;
    let aRefused: unknown;
    a.durable([102]).then(
      () => (aDurable = true),
      (err: unknown) => (aRefused = err),
    );
    await settle(() => {
      if (aRefused) throw aRefused;
      return aDurable;
    }, 'the rejoined instance to fold and commit message 2');

    const expected = referenceWindows([WINDOW], [one.ref, two.ref, three.ref]);
    await expectViewToEqual(source, expected);
    await Promise.all([a.stop(), s.stop()]);
  }, 120_000);

  it('a first delivery arriving behind a redelivered one is folded at once, so the instance it is redelivered to finds it in a checkpoint and skips it', async () => {
    const tag = randomBytes(3).toString('hex');
    const source = `gate-${tag}`;
    const [one, two] = [sale(source, 1, 4_321n), sale(source, 2, 9_999n)];
    const aId = `ga-${tag}`;
    // A's reads of the others' keys hang until the test lets them through: its redelivered message 1 waits at its gate
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    const slowReads: Arbiter = {
      ...arbiter,
      others: async (self) => {
        await opened;
        return arbiter.others(self);
      },
    };
    const a = make(aId, slowReads, 100);
    const s = make(`gs-${tag}`, arbiter, 100);
    await Promise.all([a.start(), s.start()]);
    a.arrive(201, true, [one.event]);
    a.arrive(202, false, [two.event]);
    // message 2 waited at A past ackWait (before: behind message 1) and was delivered again, to S
    s.arrive(202, true, [two.event]);
    await s.durable([202]);
    open();
    await a.durable([201, 202]);
    await Promise.all([a.flush(), s.flush()]);
    expect(s.stats).toMatchObject({ folded: 0, skipped: 1 });
    expect(a.stats.folded).toBe(2);

    const expected = referenceWindows([WINDOW], [one.ref, two.ref]);
    await expectViewToEqual(source, expected);
    await Promise.all([a.stop(), s.stop()]);
  }, 120_000);

  it('stopping with a redelivered message stuck at the gate (a silent live instance) ends at once; that batch is not acked', async () => {
    const tag = randomBytes(3).toString('hex');
    const source = `stop-${tag}`;
    const [one, two] = [sale(source, 1, 500n), sale(source, 2, 600n)];
    // an instance registered and live, that never commits again: the gate waits for it up to the liveness
    const silent = `silent-${tag}`;
    await arbiter.register(silent, 0, clock.now());
    const a = make(`sa-${tag}`, arbiter, 100);
    await a.start();
    a.arrive(301, false, [one.event]);
    a.arrive(302, true, [two.event]);
    const first = a.durable([301]);
    const stuck = a.durable([302]).then(
      () => 'acked',
      (err: { code?: string }) => err.code,
    );
    await first;
    const started = performance.now();
    await a.stop();
    // well under the liveness the gate would otherwise wait for
    expect(performance.now() - started).toBeLessThan(LIVENESS / 2);
    expect(await stuck).toBe(ErrorCodes.REALTIME_STOPPED);
    const expected = referenceWindows([WINDOW], [one.ref]);
    await waitFor(async () => JSON.stringify([...(await view(source))].sort()) === JSON.stringify([...expected].sort()), 30_000, 'the view to hold message 1 only');
    // it stops too, so the later tests' gates do not wait for it
    expect(await arbiter.commit(silent, { n: 1, at: clock.now(), folded: [], state: 'retired' })).toBe('committed');
  }, 120_000);
  it('a first delivery read past ackWait (its process paused or its link stalled, for less than the liveness): the instance it is redelivered to waits for a checkpoint taken after an answer that came behind it, which names it; it counts once', async () => {
    const tag = randomBytes(3).toString('hex');
    const source = `late-${tag}`;
    const [one, two] = [sale(source, 1, 12_345n), sale(source, 2, 678n)];
    const aId = `la-${tag}`;
    const link = stalledLink();
    const a = make(aId, link.arbiter, 600_000, link.progress);
    // B's gate rounds, and the highest checkpoint of A each has read
    let seenByB = 0;
    const watching: Arbiter = {
      ...arbiter,
      others: async (self) => {
        const out = await arbiter.others(self);
        seenByB = Math.max(seenByB, out.get(aId)?.value.n ?? 0);
        return out;
      },
    };
    const b = make(`lb-${tag}`, watching, 100, nothingAcked);
    await Promise.all([a.start(), b.start()]);
    a.arrive(401, false, [one.event]);
    clock.shift(200);
    await a.flush();
    await a.durable([401]);

    // message 402 was sent to A, whose link stalls with it unread; after ackWait it is delivered again, to B
    link.hold(() => a.arrive(402, false, [two.event]));
    b.arrive(402, true, [two.event]);
    const bDecided = b.durable([402]).then(
      () => 'acked',
      (err: { code?: string }) => err.code,
    );
    clock.shift(2_000);
    // A's heartbeat: its ack-floor request times out, so it takes a checkpoint without 402, after the redelivery; that
    // commit lands, and its answer is read after 402, which A folds as the first delivery it is
    await a.flush();
    expect(link.held()).toBe(0);
    const heartbeat = (await keyOf(aId))!;
    expect(heartbeat.folded).toEqual([[401, 401]]);
    // B's gate has read that checkpoint (taken after the redelivery, without 402) and decided what it could from it
    await settle(() => seenByB >= heartbeat.n, "B's gate to read A's heartbeat checkpoint");

    // A's next ack-floor request is answered: the checkpoint taken after it names 402, and B skips it
    clock.shift(1_100);
    await a.flush();
    await a.durable([402]);
    expect(await bDecided).toBe('acked');
    expect(b.stats).toMatchObject({ folded: 0, skipped: 1 });
    expect(a.stats.folded).toBe(2);

    const expected = referenceWindows([WINDOW], [one.ref, two.ref]);
    await expectViewToEqual(source, expected);
    await Promise.all([a.stop(), b.stop()]);
  }, 120_000);
  it('property: messages first delivered to either instance, some delivered again to the other while a redelivered one holds the first instance\'s gate, some of A\'s read only after its link stalled past ackWait: every window equals the reference (fast-check, seeded)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ holder: fc.constantFrom('a', 'b'), again: fc.boolean(), late: fc.boolean(), events: fc.integer({ min: 1, max: 3 }), cents: fc.bigInt({ min: 1n, max: 99_999n }) }), { minLength: 1, maxLength: 6 }),
        async (messages) => {
          const tag = `${randomBytes(3).toString('hex')}-${run}`;
          // sequences of this run's own, above every other test's
          const base = 1_000 + 100 * run++;
          const source = `prop-${tag}`;
          let open!: () => void;
          const opened = new Promise<void>((r) => (open = r));
          const link = stalledLink();
          const slowReads: Arbiter = { ...link.arbiter, others: async (self) => (await opened, arbiter.others(self)) };
          const a = make(`pa-${tag}`, slowReads, 100, link.progress);
          const b = make(`pb-${tag}`, arbiter, 100, nothingAcked);
          await Promise.all([a.start(), b.start()]);
          const refs: ReferenceEvent[] = [];
          const eventsOf = (i: number, n: number, cents: bigint) =>
            Array.from({ length: n }, (_, j) => {
              const { event, ref } = sale(source, i * 10 + j, cents + BigInt(j));
              refs.push(ref);
              return event;
            });
          // message `base` reaches A as a redelivery (its first holder died): it waits at A's gate
          const head = eventsOf(0, 1, 5n);
          a.arrive(base, true, head);
          const at = { a: [base], b: [] as number[] };
          const delivered = messages.map((m, i) => ({ ...m, seq: base + 1 + i, list: eventsOf(i + 1, m.events, m.cents) }));
          const late: Array<() => void> = [];
          for (const m of delivered) {
            const read = () => (m.holder === 'a' ? a : b).arrive(m.seq, false, m.list);
            // sent to A, but its link stalls with them unread (below)
            if (m.holder === 'a' && m.late) late.push(read);
            else read();
            at[m.holder as 'a' | 'b'].push(m.seq);
          }
          // some waited past ackWait and went to the other instance too
          for (const m of delivered.filter((d) => d.again)) {
            const other = m.holder === 'a' ? 'b' : 'a';
            (other === 'a' ? a : b).arrive(m.seq, true, m.list);
            at[other].push(m.seq);
          }
          clock.shift(1_500);
          // A reads its late ones behind the answer to its next commit, taken after the redeliveries
          link.hold(...late);
          // B decides its redeliveries while A's gate still waits
          await b.durable(at.b);
          await settle(() => link.held() === 0, 'A to read what its link held');
          open();
          await a.durable(at.a);
          const expected = referenceWindows([WINDOW], refs);
          const seen = await settledView(source, expected);
          await Promise.all([a.stop(), b.stop()]);
          expect(seen).toEqual(expected);
        },
      ),
      { numRuns: 12, seed: 2112, endOnFailure: true },
    );
  }, 300_000);

  it('two instances each holding a redelivery of the same message at their gates at once (held past ackWait before its batch reached the handler, so delivered once more): one claims and folds it, the other waits for its checkpoint and skips it; it counts once', async () => {
    const tag = randomBytes(3).toString('hex');
    const source = `twice-${tag}`;
    const one = sale(source, 1, 8_642n);
    // each gate reads the others' keys only once the test opens them, and returns only once both have read:
    // both decide from keys taken after the redeliveries arrived, neither of which names message 501
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    let reads = 0;
    let bothRead!: () => void;
    const both = new Promise<void>((r) => (bothRead = r));
    const together: Arbiter = {
      ...arbiter,
      others: async (self) => {
        await opened;
        const out = await arbiter.others(self);
        if (++reads === 2) bothRead();
        await both;
        return out;
      },
    };
    const a = make(`ta-${tag}`, together, 100);
    const b = make(`tb-${tag}`, together, 100);
    await Promise.all([a.start(), b.start()]);
    // its first holder died before a checkpoint named it; its second holder kept it queued past ackWait, and now A and B hold it
    a.arrive(501, true, [one.event]);
    b.arrive(501, true, [one.event]);
    const decided = Promise.all([a.durable([501]), b.durable([501])]);
    // a checkpoint of each taken after the redeliveries arrived (no consumer here: its time stands for `since`)
    clock.shift(2_000);
    await Promise.all([a.flush(), b.flush()]);
    open();
    await decided;
    await Promise.all([a.flush(), b.flush()]);
    expect(reads).toBeGreaterThanOrEqual(2);
    // before the claim both folded it (folded 1 and 1, skipped 0 and 0), and the view counted it twice
    expect(a.stats.folded + b.stats.folded).toBe(1);
    expect(a.stats.skipped + b.stats.skipped).toBe(1);

    const expected = referenceWindows([WINDOW], [one.ref]);
    await waitFor(async () => JSON.stringify([...(await view(source))].sort()) === JSON.stringify([...expected].sort()), 30_000, 'the view to equal the reference');
    expect(await view(source)).toEqual(expected);
    await Promise.all([a.stop(), b.stop()]);
  }, 120_000);

  it('an instance that keeps committing while none of its consumer-progress requests is answered (its `since` stands still) is fenced by a gate once unanswered for the liveness, instead of holding every redelivery', async () => {
    const tag = randomBytes(3).toString('hex');
    const source = `deaf-${tag}`;
    const one = sale(source, 1, 4_040n);
    const aId = `na-${tag}`;
    const deaf = async (): Promise<ConsumerProgress> => {
      throw new Error('request timed out');
    };
    const a = make(aId, arbiter, 600_000, deaf);
    const b = make(`nb-${tag}`, arbiter, 100, nothingAcked);
    await Promise.all([a.start(), b.start()]);
    // a redelivery at B's gate: no checkpoint of A can speak for it, as A has had no answer since it arrived
    b.arrive(601, true, [one.event]);
    let bDurable = false;
    void b.durable([601]).then(() => (bDurable = true));
    // A commits every 5 s of its clock (never silent for the liveness), with no answer since it registered
    await a.flush();
    expect(await keyOf(aId)).toMatchObject({ state: 'live', since: 0 });
    for (let shifted = 0; shifted <= LIVENESS; shifted += 5_000) {
      clock.shift(5_000);
      await a.flush();
    }
    // before: B waited for as long as A went unanswered (A's heartbeats kept it from being taken for dead)
    await settle(() => {
      void a.flush().catch(() => undefined);
      return bDurable;
    }, 'B to fence A and decide message 601');
    expect(await keyOf(aId)).toMatchObject({ state: 'fenced', since: 0 });
    expect(b.stats.folded).toBe(1);
    // A's next commit finds its key fenced: it goes on under a new id
    await settle(() => {
      void a.flush().catch(() => undefined);
      return a.instance !== aId;
    }, 'A to find its key fenced and go on under a new id');
    expect((await keyOf(a.instance))?.state).toBe('live');

    const expected = referenceWindows([WINDOW], [one.ref]);
    await waitFor(async () => JSON.stringify([...(await view(source))].sort()) === JSON.stringify([...expected].sort()), 30_000, 'the view to equal the reference');
    expect(await view(source)).toEqual(expected);
    await Promise.all([a.stop(), b.stop()]);
  }, 120_000);
});
