import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { shiftedClock } from '../support/clock.ts';
import type { CardinalityCappedAlert } from '../../src/monitor/alerts.ts';
import { noteCut } from '../../src/monitor/capped.ts';
import { feed, idleExpiryOf, isIdle } from '../../src/monitor/idle.ts';
import { startMonitor, type Monitor } from '../../src/monitor/monitor.ts';
import { compileSla } from '../../src/monitor/sla.ts';
import { MONITOR_BUCKET } from '../../src/monitor/state.ts';
import { closeTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { monitorDrained, publishPacked } from '../harness/monitor.ts';
import { startTestStack, type TestStack } from '../harness/stack.ts';
import { json, kvKeys, readAll, waitFor } from '../harness/streams.ts';

const HOUR = 3_600_000;
const T0 = Date.parse('2030-03-01T10:00:00Z');

describe('idle stamps (pure)', () => {
  it('stamps a state when its marks change or its stamp is older than an eighth of the expiry, and only then', () => {
    const base = { outbox: [] as unknown[], lastAt: 1_000 };
    expect(feed(base, null, 1_000 + 99, 800)).toBeNull();
    expect(feed(base, null, 1_000 + 100, 800)).toEqual({ outbox: [], lastAt: 1_100 });
    expect(feed(base, { ...base, outbox: ['x'] }, 1_050, 800)).toEqual({ outbox: ['x'], lastAt: 1_050 });
    // an older event never moves the stamp back
    expect(feed({ outbox: [], lastAt: 5_000 }, { outbox: ['y'], lastAt: 5_000 }, 10, 800)?.lastAt).toBe(5_000);
    // a state from before stamps existed gets one with its next event
    expect(feed({ outbox: [] }, null, 7, 800)).toEqual({ outbox: [], lastAt: 7 });
  });

  it('forgets only a state with nothing to publish and a stamp older than the expiry; never one without a stamp', () => {
    expect(isIdle({ outbox: [], lastAt: 100 }, 1_000, 899)).toBe(true);
    expect(isIdle({ outbox: [], lastAt: 100 }, 1_000, 900)).toBe(false);
    expect(isIdle({ outbox: [{}], lastAt: 100 }, 1_000, 10)).toBe(false);
    expect(isIdle({ outbox: [] }, 1_000, 10)).toBe(false);
    expect(isIdle(null, 1_000, 10)).toBe(false);
  });

  it('never expires a source sooner than its schedule needs', () => {
    const monitor = { sourceIdleExpiry: 1_000, resolveAfter: 86_400_000, groupInterval: 300_000, grace: 10_000 };
    const sla = (expect: object | undefined) => compileSla(testConfig({ slas: [{ name: 's', source: '*', maxDelay: '1s', ...(expect ? { expect } : {}) }] }).slas[0]!);
    expect(idleExpiryOf(sla(undefined), monitor)).toBe(86_400_000 + 310_000);
    expect(idleExpiryOf(sla({ every: '10d' }), monitor)).toBe(20 * 86_400_000 + 10_000);
    expect(idleExpiryOf(sla({ dailyBy: '06:00' }), { ...monitor, resolveAfter: 0 })).toBe(3 * 86_400_000);
  });

  it('raises one CardinalityCapped per SLA and UTC day, with a deterministic id', () => {
    const first = noteCut({ days: [], outbox: [] }, { sla: 'late', limit: 2, receivedAt: T0, source: 'x' })!;
    expect(first.outbox.map((a) => a.id)).toEqual(['capped:late:2030-03-01']);
    expect(noteCut(first, { sla: 'late', limit: 2, receivedAt: T0 + HOUR, source: 'y' })).toBeNull();
    expect(noteCut(first, { sla: 'late', limit: 2, receivedAt: T0 + 24 * HOUR, source: 'y' })!.outbox.map((a) => a.id)).toEqual(['capped:late:2030-03-01', 'capped:late:2030-03-02']);
  });
});

let stack: TestStack;
let { js, jsm, nc, ch, config } = {} as TestStack;
let monitor: Monitor;
const registry = new Registry();
const clock = shiftedClock();
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });

beforeAll(async () => {
  stack = await startTestStack((database) => testConfig({
    clickhouse: { database },
    slas: [{ name: 'late', source: 'idle-*', type: 'sale', maxDelay: '1h' }],
    monitor: { groupWait: '1s', groupInterval: '1s', resolveAfter: '1s', grace: '100ms', tick: '100ms', sourceIdleExpiry: '10m', maxSourcesPerSla: 2, stats: { every: '1s' } },
  }));
  ({ js, jsm, nc, ch, config } = stack);
  clock.jumpTo(T0);
  monitor = await startMonitor({ config, js, clickhouse: ch.client, logger, clock, registry });
}, 60_000);

afterAll(async () => {
  await monitor?.stop();
  await stack?.dispose();
  await closeTestClickHouse();
});

let nextSeq = 1;
const late = (source: string, receivedAt: number): TidemarkEvent => ({ id: `${source}-${nextSeq}`, type: 'sale', source, key: null, occurredAt: receivedAt - 2 * HOUR, receivedAt, data: {}, seq: nextSeq++ });

/** One event a message, and merged by the monitor before it returns. */
async function publish(events: TidemarkEvent[]): Promise<void> {
  await publishPacked(nc, jsm, events, 1);
  await monitorDrained(jsm);
}

const stateKeys = (): Promise<string[]> => kvKeys(jsm, MONITOR_BUCKET, 'd.late.>');

const cutCount = async (): Promise<number> => (await registry.getSingleMetric('tidemark_monitor_sources_cut_total')!.get()).values.find((v) => v.labels.state === 'd.late')?.value ?? 0;
const cappedAlerts = async (): Promise<CardinalityCappedAlert[]> => (await readAll(js, jsm, 'ALERTS')).filter((m) => m.subject === 'alerts.capped.late').map((m) => json<CardinalityCappedAlert>(m));

describe('bounded SLA state under sources chosen by senders', { timeout: 180_000 }, () => {
  it('says in one CardinalityCapped alert a day that sources were cut, forgets idle sources, and then admits new ones', async () => {
    await publish([late('idle-a', T0), late('idle-b', T0), late('idle-c', T0 + 1)]);
    expect(await stateKeys()).toHaveLength(2);
    expect(await cutCount()).toBe(1);
    const [alert] = await waitFor(async () => {
      const found = await cappedAlerts();
      return found.length > 0 && found;
    }, 60_000, 'a CardinalityCapped alert');
    expect(alert).toMatchObject({ id: 'capped:late:2030-03-01', kind: 'CardinalityCapped', sla: 'late', limit: 2, example: 'idle-c', day: '2030-03-01' });

    // more cut sources the same day: counted, no second alert (the tick has flushed every outbox once it returns)
    await publish([late('idle-d', T0 + 2), late('idle-e', T0 + 3)]);
    expect(await cutCount()).toBe(3);
    await monitor.tick();
    await monitor.tick();
    expect(await cappedAlerts()).toHaveLength(1);

    // an hour with no events: both states are idle past the 10 min expiry, and are forgotten
    clock.shift(HOUR);
    await waitFor(async () => (await stateKeys()).length === 0, 60_000, 'idle states forgotten');
    const forgotten = (await registry.getSingleMetric('tidemark_monitor_sources_forgotten_total')!.get()).values.find((v) => v.labels.sla === 'late');
    expect(forgotten?.value).toBe(2);

    // the places are free again: a source that was cut now gets state
    await publish([late('idle-c', T0 + HOUR + 5_000)]);
    expect(await stateKeys()).toHaveLength(1);
    expect(await cutCount()).toBe(3);
  }, 90_000);
});
