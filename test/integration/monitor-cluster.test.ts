import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeEvent, eventSubject, type TidemarkEvent } from '../../src/core/envelope.ts';
import { shiftedClock } from '../support/clock.ts';
import type { Alert, DelayedEventAlert } from '../../src/monitor/alerts.ts';
import { openAlertGuard } from '../../src/nats/alert-guard.ts';
import { startMonitor, type Monitor } from '../../src/monitor/monitor.ts';
import { closeTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { checksRan, monitorDrained } from '../harness/monitor.ts';
import { startTestStack, type TestStack } from '../harness/stack.ts';
import { json, readAll, streamCount, waitFor } from '../harness/streams.ts';

const MIN = 60_000;
const T0 = Date.parse('2030-03-01T00:00:00Z');

let stack: TestStack;
let { ch, nc, js, jsm, config } = {} as TestStack;
const running: Monitor[] = [];
let clock: ReturnType<typeof shiftedClock>;
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });

// each test gets its own nats-server, database and clock at T0: what a test reads, it raised itself
beforeEach(async () => {
  stack = await startTestStack((database) => testConfig({
    clickhouse: { database },
    // a 1 s dedup window, so only the KV guard can be what stops a repeat later on
    nats: { streams: { alerts: { maxAge: '1d', duplicateWindow: '1s' } } },
    slas: [
      { name: 'late', source: '*', maxDelay: '1m' },
      { name: 'beat', source: 'beat-1', type: 'beat', expect: { every: '1m' } },
    ],
    // a group's first alert waits a minute of the test clock: none goes out while the flood is still being merged
    monitor: { groupWait: '1m', groupInterval: '5m', resolveAfter: '5m', grace: '1s', tick: '100ms', batchSize: 500 },
  }));
  ({ ch, nc, js, jsm, config } = stack);
  clock = shiftedClock();
  clock.jumpTo(T0);
});

afterEach(async () => {
  for (const m of running.splice(0)) await m.stop();
  await stack?.dispose();
});

afterAll(closeTestClickHouse);

async function start(instance: string, registry = new Registry()): Promise<Monitor> {
  const monitor = await startMonitor({ config, js, clickhouse: ch.client, logger, clock, registry, instance });
  running.push(monitor);
  return monitor;
}

async function stop(monitor: Monitor): Promise<void> {
  running.splice(running.indexOf(monitor), 1);
  await monitor.stop();
}

let nextSeq = 1;
const event = (source: string, type: string, occurredAt: number, receivedAt: number): TidemarkEvent => {
  const seq = nextSeq++;
  return { id: `${source}-${seq}`, type, source, key: null, occurredAt, receivedAt, data: {}, seq };
};

async function publish(events: TidemarkEvent[]): Promise<void> {
  const before = await streamCount(jsm, 'EVENTS');
  for (const e of events) nc.publish(eventSubject(e), encodeEvent(e));
  await nc.flush();
  await waitFor(async () => (await streamCount(jsm, 'EVENTS')) === before + events.length, 60_000, 'events stored');
}

const drained = () => monitorDrained(jsm);

const allAlerts = async (): Promise<Array<Alert & { raisedAt: number }>> => (await readAll(js, jsm, 'ALERTS')).map((m) => json<Alert & { raisedAt: number }>(m));
const summary = (alerts: Alert[]) => alerts.map((a) => `${a.kind} ${a.source} at +${(a.at - T0) / 1000}s`).sort();
/** Every event merged and each running instance's clock-driven checks run twice more: an alert that should not come has had its chance. */
const settle = async () => {
  await drained();
  await checksRan(running);
};
/**
 * The first run of the running monitors: a flood of `size` late sales from 'multi' (2 min and more late, 9 ms apart),
 * then the clock at T0+3m: one DelayedEvent for the flood and a MissingData for the silent beat-1. Returns the flood's last receivedAt.
 */
async function firstRun(size: number): Promise<number> {
  const flood = Array.from({ length: size }, (_, i) => event('multi', 'sale', T0 + i * 9 - (2 * MIN + (i % 100) * 100), T0 + i * 9));
  await publish(flood);
  await drained();
  clock.jumpTo(T0 + 3 * MIN + 2_000);
  await waitFor(async () => (await allAlerts()).some((a) => a.kind === 'DelayedEvent' && a.source === 'multi'), 60_000, 'the DelayedEvent alert');
  await settle();
  return flood.at(-1)!.receivedAt;
}

const eventsSeen = async (registry: Registry) => Number(/tidemark_monitor_events_total (\d+)/.exec(await registry.metrics())?.[1] ?? 0);

describe('monitor instances', { timeout: 120_000 }, () => {
  it('two instances on one durable consumer raise each alert once, with exact grouped counts', async () => {
    const registries = [new Registry(), new Registry()];
    await start('a', registries[0]);
    await start('b', registries[1]);
    await firstRun(20_000);
    const after = await allAlerts();
    expect(summary(after)).toEqual(['DelayedEvent multi at +0s', 'MissingData beat-1 at +120s']);
    const delayed = after.filter((a): a is DelayedEventAlert & { raisedAt: number } => a.kind === 'DelayedEvent');
    expect(delayed.map((a) => [a.sequence, a.count, a.totalCount])).toEqual([[1, 20_000, 20_000]]);
    const split = await Promise.all(registries.map(eventsSeen));
    expect(split[0]! + split[1]!).toBe(20_000);
    expect(Math.min(...split)).toBeGreaterThan(0);
    logger.info({ split }, 'events per instance');
  });

  it('a restarted monitor raises nothing again, and the KV guard holds after the JetStream dedup window has passed', async () => {
    const a = await start('a');
    await firstRun(1_000);
    await stop(a);
    const before = await allAlerts();
    expect(summary(before)).toEqual(['DelayedEvent multi at +0s', 'MissingData beat-1 at +120s']);
    const c = await start('c');
    await c.tick();
    await settle();
    expect(await allAlerts()).toHaveLength(before.length);
    await new Promise((r) => setTimeout(r, 1_100)); // past ALERTS' 1 s duplicate window
    const publish = await openAlertGuard(js, config.monitor.alertMemory);
    expect(await publish(before[0]!, clock.now())).toBe('duplicate');
    expect(await streamCount(jsm, 'ALERTS')).toBe(before.length);
  });

  it('a monitor that was down catches up and raises what it missed, each at its own time', async () => {
    const first = await start('a');
    const lastLate = await firstRun(1_000);
    await stop(first);
    const before = (await allAlerts()).length;
    const beats = [10, 11, 12, 16, 17].map((m) => T0 + m * MIN + 5_000);
    await publish([
      ...beats.map((at) => event('beat-1', 'beat', at, at)),
      ...Array.from({ length: 50 }, (_, i) => event('down', 'sale', T0 + 12 * MIN + i * 1_000 - 5 * MIN, T0 + 12 * MIN + i * 1_000)),
    ]);
    clock.jumpTo(T0 + 20 * MIN + 2_000);
    await start('d');
    const caughtUp = await waitFor(async () => {
      const found = (await allAlerts()).slice(before);
      return found.length >= 7 && found;
    }, 60_000, 'the missed alerts');
    await settle();
    expect((await allAlerts()).slice(before)).toHaveLength(7);
    expect(summary(caughtUp)).toEqual([
      'DelayedEvent down at +720s', // its first late event
      'MissingData beat-1 at +1140s', // the silence after the last beat: [18m, 19m) stayed empty
      'MissingData beat-1 at +840s', // [13m, 14m) empty
      'Resolved beat-1 at +605s', // the outage open since the first run ends with the beat at 10m05s
      'Resolved beat-1 at +965s', // [16m, 17m) brought data again
      'Resolved down at +1069s', // resolveAfter after its last late event (12m49s)
      `Resolved multi at +${(lastLate + 5 * MIN - T0) / 1000}s`, // resolveAfter after the flood's last late event
    ].sort());
    for (const alert of caughtUp) expect(alert.raisedAt).toBeGreaterThanOrEqual(T0 + 20 * MIN);
    expect(caughtUp.find((a) => a.kind === 'Resolved' && a.at === beats[0])).toMatchObject({ lateByMs: beats[0]! - (T0 + 2 * MIN) });
  });
});
