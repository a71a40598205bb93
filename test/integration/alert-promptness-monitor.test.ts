import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/core/config.ts';
import { encodeEvent, eventSubject, type TidemarkEvent } from '../../src/core/envelope.ts';
import type { Clock } from '../../src/core/time.ts';
import { shiftedClock } from '../support/clock.ts';
import type { Alert, MissingDataAlert } from '../../src/monitor/alerts.ts';
import { startMonitor, type Monitor } from '../../src/monitor/monitor.ts';
import { CONSUMERS, ensureTopology } from '../../src/nats/topology.ts';
import { type TestClickHouse, useTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { json, readAll, waitFor } from '../harness/streams.ts';

/**
 * Promptness of the monitor's alerts, measured on `alerts.>` of a real nats-server.
 * The clock-driven kinds run on a frozen clock the test moves: one check just before
 * the due instant raises nothing, and with the clock set exactly to it (and never
 * moved again) the alert must arrive, stamped with that instant. That is zero
 * lateness in clock terms whatever the machine's speed; the wall time from moving the
 * clock to the alert on `alerts.>` is measured too, against a generous bound (the loop
 * checks every monitor.tick = 100 ms; the rest is a loaded 2-core machine).
 */

const MIN = 60_000;
const HOUR = 60 * MIN;
/** 02:00 in Taipei on 2030-01-15, aligned to the 5-minute slots. */
const T0 = Date.parse('2030-01-15T02:00:00+08:00');
const GRACE = 2_000;
const GROUP_WAIT = 10_000;
/** wall time from the triggering moment to the alert on alerts.>: far above what it takes, so load does not fail it */
const WALL_BOUND_MS = 8_000;

const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
const manualClock = (start: number): Clock & { set: (t: number) => void } => {
  let t = start;
  return { now: () => t, set: (next) => void (t = next) };
};

type Raised = Alert & { raisedAt: number };
type Seen = { alert: Raised; wallAt: number };

/** Every alert on `alerts.>` with the wall time it arrived. */
function watchAlerts(nc: NatsConnection): { arrival: (match: (a: Alert) => boolean, what: string) => Promise<Seen>; stop: () => void } {
  const seen: Seen[] = [];
  const sub = nc.subscribe('alerts.>', { callback: (_err, msg) => {
    seen.push({ alert: msg.json(), wallAt: performance.now() });
  } });
  return {
    arrival: (match, what) => waitFor(() => seen.find((s) => match(s.alert)), 20_000, what),
    stop: () => sub.unsubscribe(),
  };
}

let nextSeq = 1;
function event(source: string, type: string, occurredAt: number, receivedAt: number): TidemarkEvent {
  const seq = nextSeq++;
  return { id: `${source}-${seq}`, type, source, key: null, occurredAt, receivedAt, data: {}, seq };
}

type Rig<C extends Clock = ReturnType<typeof manualClock>> = { server: TestNats; nc: NatsConnection; js: JetStreamClient; jsm: JetStreamManager; monitor: Monitor; watch: ReturnType<typeof watchAlerts>; clock: C };

/** A real nats-server with the topology, a watch on alerts.> and a monitor on `clock`; `beforeMonitor` runs right before the monitor starts. */
async function startRig<C extends Clock>(ch: TestClickHouse, config: Config, clock: C, beforeMonitor: () => void = () => undefined): Promise<Rig<C>> {
  const server = await startTestNats();
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await ensureTopology(jsm, config);
  const watch = watchAlerts(nc);
  beforeMonitor();
  const monitor = await startMonitor({ config, js, clickhouse: ch.client, logger, clock, registry: new Registry() });
  return { server, nc, js, jsm, monitor, watch, clock };
}

async function stopRig(rig: Rig<Clock> | undefined): Promise<void> {
  rig?.watch.stop();
  await rig?.monitor.stop();
  await rig?.nc.close();
  await rig?.server.dispose();
}

/** Every event on EVENTS has been merged by the monitor. */
const merged = (rig: Rig) => waitFor(async () => {
  const info = await rig.jsm.consumers.info(CONSUMERS.monitor.stream, CONSUMERS.monitor.durable);
  return info.num_pending === 0 && info.num_ack_pending === 0;
}, 60_000, 'the monitor to merge EVENTS');

const stored = async (rig: Rig, match: (a: Alert) => boolean): Promise<Alert[]> => (await readAll(rig.js, rig.jsm, 'ALERTS')).map((m) => json<Alert>(m)).filter(match);

/**
 * The clock one millisecond before `dueAt`: a full check raises nothing. Then exactly
 * `dueAt`, and the alert comes with the clock still there. Returns the wall delay.
 */
async function dueExactlyAt(rig: Rig, dueAt: number, match: (a: Alert) => boolean, what: string): Promise<{ delayMs: number; alert: Alert & { raisedAt: number } }> {
  rig.clock.set(dueAt - 1);
  await rig.monitor.tick();
  expect(await stored(rig, match), `${what} before its due instant`).toEqual([]);
  const movedAt = performance.now();
  rig.clock.set(dueAt);
  const { alert, wallAt } = await rig.watch.arrival(match, what);
  expect(alert.raisedAt).toBe(dueAt);
  expect(rig.clock.now()).toBe(dueAt);
  const delayMs = wallAt - movedAt;
  console.info(`${what}: on alerts.> ${Math.round(delayMs)} ms (wall) after its due instant; raisedAt − due = ${alert.raisedAt - dueAt} ms`);
  expect(delayMs).toBeLessThan(WALL_BOUND_MS);
  return { delayMs, alert };
}

const ch = useTestClickHouse();

describe('clock-driven monitor alerts go out at their due instant', () => {
  let rig: Rig;

  // a monitor (and NATS) of each test's own from T0: a clock another test moved past this test's due instant would have raised its alert already
  beforeEach(async () => {
    const config = testConfig({
      clickhouse: { database: ch.db },
      reports: [{ name: 'revenue', types: ['sale'], timeZone: 'Asia/Taipei', groupBy: ['source'], measures: { orders: { fn: 'count' } } }],
      slas: [
        { name: 'late', source: 'late-*', type: 'sale', maxDelay: '1h' },
        { name: 'feed', source: 'feed-1', type: 'tick', expect: { every: '5m' } },
        { name: 'nightly', source: 'store-9', type: 'sale', expect: { dailyBy: '06:00', timeZone: 'Asia/Taipei' } },
        { name: 'close', source: 'none', deadlines: [{ report: 'revenue', status: 'final', by: '2h' }] },
      ],
      monitor: { groupWait: `${GROUP_WAIT}ms`, grace: `${GRACE}ms`, tick: '100ms', stats: { every: '1s' } },
    });
    rig = await startRig(ch, config, manualClock(T0));
  });

  afterEach(() => stopRig(rig));

  it('DelayedEvent: groupWait after its first late event was received', async () => {
    const receivedAt = T0 + 1_000;
    rig.clock.set(receivedAt);
    const late = event('late-1', 'sale', receivedAt - 3 * HOUR, receivedAt);
    await rig.js.publish(eventSubject(late), encodeEvent(late));
    await merged(rig);
    const { alert } = await dueExactlyAt(rig, receivedAt + GROUP_WAIT, (a) => a.kind === 'DelayedEvent' && a.source === 'late-1', 'DelayedEvent');
    expect(alert).toMatchObject({ id: `delayed:late:late-1:${new Date(receivedAt).toISOString()}` });
  });

  it('MissingData (every 5m): the empty slot\'s end plus grace', async () => {
    // the monitor started at T0: the slot holding T0 is not judged, the next one [T0+5m, T0+10m) is due at its end + grace
    const { alert } = await dueExactlyAt(rig, T0 + 10 * MIN + GRACE, (a) => a.kind === 'MissingData' && a.source === 'feed-1', 'MissingData every');
    expect(alert).toMatchObject({ expectedBy: T0 + 10 * MIN });
  });

  it('MissingData (dailyBy 06:00): the deadline plus grace', async () => {
    const deadline = Date.parse('2030-01-15T06:00:00+08:00');
    const { alert } = await dueExactlyAt(rig, deadline + GRACE, (a) => a.kind === 'MissingData' && a.source === 'store-9', 'MissingData dailyBy');
    expect(alert).toMatchObject({ expectedBy: deadline, day: '2030-01-14' });
  });

  it('DeadlineMissed: the report deadline itself (day end + by), read against chDB', async () => {
    const deadline = Date.parse('2030-01-16T02:00:00+08:00');
    const { alert } = await dueExactlyAt(rig, deadline, (a) => a.kind === 'DeadlineMissed', 'DeadlineMissed');
    expect(alert).toMatchObject({ id: 'deadline:revenue:final:2030-01-15', expectedBy: deadline });
  });
});

describe('CardinalityCapped goes out when the cap is hit, not at the next tick', () => {
  let rig: Rig;

  beforeAll(async () => {
    const config = testConfig({
      clickhouse: { database: ch.db },
      slas: [{ name: 'cap', source: 'cap-*', type: 'tick', expect: { every: '5m' } }],
      // one check at start, then none for 10 minutes: an alert that waits for the tick cannot arrive in time
      monitor: { tick: '10m', maxSourcesPerSla: 2, stats: { every: '1s' } },
    });
    rig = await startRig(ch, config, manualClock(T0));
  });

  afterAll(() => stopRig(rig));

  it('raises it as the batch that cut a source is merged (wall time: the trigger is an event on EVENTS)', async () => {
    for (const source of ['cap-1', 'cap-2']) {
      const e = event(source, 'tick', T0, T0);
      await rig.js.publish(eventSubject(e), encodeEvent(e));
    }
    await merged(rig);
    expect(await stored(rig, (a) => a.kind === 'CardinalityCapped')).toEqual([]);
    const cut = event('cap-3', 'tick', T0 + 1, T0 + 1);
    const sentAt = performance.now();
    await rig.js.publish(eventSubject(cut), encodeEvent(cut));
    const { alert, wallAt } = await rig.watch.arrival((a) => a.kind === 'CardinalityCapped', 'CardinalityCapped');
    const delayMs = wallAt - sentAt;
    console.info(`CardinalityCapped: on alerts.> ${Math.round(delayMs)} ms after the cutting event was published`);
    expect(alert).toMatchObject({ id: `capped:cap:${new Date(T0).toISOString().slice(0, 10)}`, example: 'cap-3', limit: 2 });
    expect(delayMs).toBeLessThan(WALL_BOUND_MS);
  });
});

describe('the monitor wakes at the next due instant, not at its next tick', () => {
  const clock = shiftedClock();
  let rig: Rig<typeof clock>;
  const EVERY = 3_000;
  const DAILY_DEADLINE = Date.parse('2030-01-15T06:00:00+08:00');

  beforeAll(async () => {
    const config = testConfig({
      clickhouse: { database: ch.db },
      slas: [
        { name: 'pulse', source: 'pulse-1', type: 'tick', expect: { every: `${EVERY}ms` } },
        { name: 'nightly', source: 'store-9', type: 'sale', expect: { dailyBy: '06:00', timeZone: 'Asia/Taipei' } },
      ],
      // one check at start; without waking at the due instant, nothing more for 10 minutes
      monitor: { tick: '10m', grace: '1s', stats: { every: '1s' } },
    });
    // a real-time clock started 4 s before a daily deadline: its day is the first judged
    rig = await startRig(ch, config, clock, () => clock.jumpTo(DAILY_DEADLINE - 4_000));
  });

  afterAll(() => stopRig(rig));

  const onTime = async (match: (a: Alert) => boolean, what: string) => {
    const { alert } = await rig.watch.arrival(match, what);
    const due = (alert as MissingDataAlert).expectedBy + 1_000;
    const lateMs = alert.raisedAt - due;
    console.info(`${what}: raised ${lateMs} ms after its due instant (real-time clock, monitor tick 10 min)`);
    expect(lateMs).toBeGreaterThanOrEqual(0);
    // wall time: a timer and one check on a loaded machine; a wait for the tick would be 10 minutes
    expect(lateMs).toBeLessThan(WALL_BOUND_MS);
  };

  it('MissingData every 3s: at the empty slot\'s end plus grace', () => onTime((a) => a.kind === 'MissingData' && a.source === 'pulse-1', 'MissingData every (woken)'));

  it('MissingData dailyBy: at the deadline plus grace', () => onTime((a) => a.kind === 'MissingData' && a.source === 'store-9', 'MissingData dailyBy (woken)'));
});
