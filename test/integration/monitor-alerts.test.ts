import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { shiftedClock } from '../support/clock.ts';
import type { Alert, DeadlineMissedAlert, DelayedEventAlert, MissingDataAlert, ResolvedAlert } from '../../src/monitor/alerts.ts';
import { startMonitor, type Monitor } from '../../src/monitor/monitor.ts';
import { publishAmendedAlert } from '../../src/processors/daily/amended-alert.ts';
import { businessDay } from '../../src/core/business-day.ts';
import type { RevisionRecord } from '../../src/processors/logic/revisions.ts';
import { insertRevisions } from '../../src/sinks/clickhouse/revisions-table.ts';
import { closeTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { checksRan, monitorDrained, publishPacked } from '../harness/monitor.ts';
import { startTestStack, type TestStack } from '../harness/stack.ts';
import { json, readAll, waitFor } from '../harness/streams.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
/** Virtual start: 02:00 in Taipei on 2030-01-15 (18:00Z the day before), aligned to every bucket. */
const T0 = Date.parse('2030-01-15T02:00:00+08:00');

let stack: TestStack;
let { ch, nc, js, jsm, config } = {} as TestStack;
let monitor: Monitor;
let registry: Registry;
let clock: ReturnType<typeof shiftedClock>;
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });

// each test gets its own nats-server, database and monitor, with the clock at T0: it reads only what it raised
beforeEach(async () => {
  stack = await startTestStack((database) => testConfig({
    clickhouse: { database },
    reports: [{ name: 'revenue', types: ['sale'], timeZone: 'Asia/Taipei', groupBy: ['source'], measures: { orders: { fn: 'count' } } }],
    slas: [
      { name: 'late', source: '*', type: 'sale', maxDelay: '1h' },
      { name: 'stats', source: 'stats-*', maxDelay: '1h' },
      { name: 'feed', source: 'feed-1', type: 'tick', expect: { every: '5m' } },
      { name: 'nightly', source: 'store-9', type: 'sale', expect: { dailyBy: '06:00', timeZone: 'Asia/Taipei' } },
      { name: 'close', source: 'none', deadlines: [{ report: 'revenue', status: 'final', by: '2h' }] },
    ],
    monitor: { groupWait: '10s', groupInterval: '5m', resolveAfter: '5m', grace: '1s', tick: '100ms', batchSize: 5_000, stats: { every: '1s' } },
  }));
  ({ ch, nc, js, jsm, config } = stack);
  registry = new Registry();
  clock = shiftedClock();
  clock.jumpTo(T0);
  monitor = await startMonitor({ config, js, clickhouse: ch.client, logger, clock, registry });
});

afterEach(async () => {
  await monitor?.stop();
  await stack?.dispose();
});

afterAll(closeTestClickHouse);

let nextSeq = 1;
function event(source: string, type: string, occurredAt: number, receivedAt: number): TidemarkEvent {
  const seq = nextSeq++;
  return { id: `${source}-${seq}`, type, source, key: null, occurredAt, receivedAt, data: {}, seq };
}

/** Packed 50 events a message, as a gateway packs them. */
const publish = (events: TidemarkEvent[]) => publishPacked(nc, jsm, events, 50);

async function alerts<A extends Alert>(kind: A['kind'], source: string): Promise<A[]> {
  return (await readAll(js, jsm, 'ALERTS')).map((m) => json<A>(m)).filter((a) => a.kind === kind && a.source === source);
}

async function waitForAlerts<A extends Alert>(kind: A['kind'], source: string, count: number): Promise<A[]> {
  return waitFor(async () => {
    const found = await alerts<A>(kind, source);
    return found.length >= count && found;
  }, 60_000, `${count} ${kind} alert(s) for ${source}`);
}

const drained = () => monitorDrained(jsm);

/** Every event merged and the clock-driven checks run twice more: an alert that should not come has had its chance. */
const settle = async () => {
  await drained();
  await checksRan([monitor]);
};

const revision = (day: string, group: string, revisionNo: number, status: RevisionRecord['status'], computedAt: number) => ({
  report: 'revenue', day, group_key: group, group: { source: (JSON.parse(group) as string[])[0]! }, revision: revisionNo, status, reason: status === 'final' ? 'close' : 'new', computed_at: computedAt, known_at: computedAt, events: 1, late_events: 0, measures: { orders: '1' },
});

/** The test clock moves only forward. */
const advanceTo = (at: number) => clock.jumpTo(Math.max(at, clock.now()));

const exactP95 = (values: number[]) => [...values].sort((a, b) => a - b)[Math.ceil(0.95 * values.length) - 1]!;

describe('delay-SLA monitor', { timeout: 240_000 }, () => {
  it('groups a flood of 100k late events: the first alert groupWait after the first one, the rest in one update, exact counts and already published days; resolved after resolveAfter', async () => {
    // revenue's 2030-01-14 (Taipei) had a revision an hour before the flood arrived
    await insertRevisions(ch.client, ch.db, [revision('2030-01-14', '["flood"]', 1, 'preliminary', T0 - HOUR)]);
    const flood = Array.from({ length: 100_000 }, (_, i) => {
      const receivedAt = T0 + i * 6; // over 10 minutes
      return event('flood', 'sale', receivedAt - (2 * HOUR + (i % 1_000) * 1_000), receivedAt);
    });
    await publish(flood);
    await drained();
    // the first alert may have gone out while the flood was being merged (the clock runs): the rest comes in the update
    advanceTo(T0 + 10 * MIN + 2_000);
    const group = `delayed:late:flood:${new Date(T0).toISOString()}`;
    const raised = await waitFor(async () => {
      const found = await alerts<DelayedEventAlert>('DelayedEvent', 'flood');
      return found.reduce((n, a) => n + a.count, 0) === 100_000 && found;
    }, 60_000, 'the flood alerted in full');
    await settle();
    const sorted = (await alerts<DelayedEventAlert>('DelayedEvent', 'flood')).sort((a, b) => a.sequence - b.sequence);
    expect(sorted).toHaveLength(raised.length);
    expect(sorted.length).toBeLessThanOrEqual(2);
    expect(sorted.map((a) => [a.id, a.group, a.sequence, a.updates])).toEqual(
      sorted.map((_, i) => (i === 0 ? [group, group, 1, undefined] : [`${group}#${i + 1}`, group, i + 1, i === 1 ? group : `${group}#${i}`])),
    );
    const delays = flood.map((e) => e.receivedAt - e.occurredAt);
    expect(sorted[0]).toMatchObject({ sla: 'late', at: T0, firstReceivedAt: T0, groupStartedAt: T0, days: ['2030-01-14'], revisedDays: ['revenue/2030-01-14'] });
    expect(sorted.at(-1)).toMatchObject({ totalCount: 100_000, totalWorstDelayMs: Math.max(...delays), lastReceivedAt: flood.at(-1)!.receivedAt });
    expect(sorted.reduce((n, a) => n + a.changedPublished, 0)).toBe(flood.filter((e) => businessDay(e.occurredAt, 'Asia/Taipei') === '2030-01-14').length);
    expect([...new Set(sorted.flatMap((a) => a.reportDays))].sort()).toEqual(['revenue/2030-01-14', 'revenue/2030-01-15']);
    if (sorted.length === 1) expect(Math.abs(sorted[0]!.p95DelayMs - exactP95(delays))).toBeLessThanOrEqual(exactP95(delays) * 0.01);
    // once no late event was received for resolveAfter, the group resolves
    advanceTo(T0 + 10 * MIN + 5 * MIN + 2_000);
    const [resolved] = await waitForAlerts<Extract<Alert, { resolvedKind: 'DelayedEvent' }>>('Resolved', 'flood', 1);
    expect(resolved).toMatchObject({ id: `resolved:${group}`, resolves: group, resolvedKind: 'DelayedEvent', totalCount: 100_000 });
  });

  it('raises MissingData by the clock for a source that never sent anything, once per outage, and Resolved when it comes', async () => {
    // the monitor started at T0, inside [T0, T0+5m): the first interval it can judge is [T0+5m, T0+10m)
    advanceTo(T0 + 10 * MIN + 2_000);
    const [missing] = await waitForAlerts<MissingDataAlert>('MissingData', 'feed-1', 1);
    expect(missing).toMatchObject({ id: `missing:feed:feed-1:every:${new Date(T0 + 5 * MIN).toISOString()}`, schedule: 'every', windowStart: T0 + 5 * MIN, at: T0 + 10 * MIN });
    advanceTo(T0 + 30 * MIN);
    await settle();
    expect(await alerts('MissingData', 'feed-1')).toHaveLength(1);
    await publish([event('feed-1', 'tick', T0 + 31 * MIN, T0 + 31 * MIN)]);
    advanceTo(T0 + 32 * MIN);
    const [resolved] = await waitForAlerts<ResolvedAlert>('Resolved', 'feed-1', 1);
    expect(resolved).toMatchObject({ resolves: missing!.id, resolvedKind: 'MissingData', at: T0 + 31 * MIN, arrivedAt: T0 + 31 * MIN, lateByMs: 21 * MIN });
  });

  it('raises MissingData when day D has no data by D+1 06:00 in the SLA zone, and Resolved with how late it came', async () => {
    const deadline = Date.parse('2030-01-15T06:00:00+08:00');
    advanceTo(deadline + 2_000);
    const [missing] = await waitForAlerts<MissingDataAlert>('MissingData', 'store-9', 1);
    expect(missing).toMatchObject({ id: 'missing:nightly:store-9:daily:2030-01-14', day: '2030-01-14', at: deadline, expectedBy: deadline });
    const arrived = deadline + 90 * MIN;
    advanceTo(arrived + 2_000);
    await publish([event('store-9', 'sale', Date.parse('2030-01-14T12:00:00+08:00'), arrived)]);
    const [resolved] = await waitForAlerts<ResolvedAlert>('Resolved', 'store-9', 1);
    expect(resolved).toMatchObject({ resolves: missing!.id, day: '2030-01-14', at: arrived, lateByMs: 90 * MIN });
  });

  it('raises DeadlineMissed when a report day is not final in time, naming the lagging group, and Resolved when it is', async () => {
    const deadline = Date.parse('2030-01-16T02:00:00+08:00');
    await insertRevisions(ch.client, ch.db, [
      revision('2030-01-15', '["a"]', 1, 'final', deadline - HOUR),
      revision('2030-01-15', '["b"]', 1, 'preliminary', T0 + HOUR),
    ]);
    advanceTo(deadline + 2_000);
    const [missed] = await waitForAlerts<DeadlineMissedAlert>('DeadlineMissed', 'revenue', 1);
    expect(missed).toMatchObject({ id: 'deadline:revenue:final:2030-01-15', day: '2030-01-15', status: 'final', at: deadline, lagging: [{ groupKey: '["b"]', status: 'preliminary' }] });
    await insertRevisions(ch.client, ch.db, [revision('2030-01-15', '["b"]', 2, 'final', deadline + HOUR)]);
    advanceTo(deadline + HOUR + 2_000);
    const [resolved] = await waitForAlerts<ResolvedAlert>('Resolved', 'revenue', 1);
    expect(resolved).toMatchObject({ resolves: missed!.id, resolvedKind: 'DeadlineMissed', at: deadline + HOUR, lateByMs: HOUR });
  });

  it('files the processor\'s ReportAmended alerts in the alerts table too', async () => {
    const previous: RevisionRecord = { revision: 2, status: 'final', reason: 'close', measures: { orders: '1' }, events: 1, lateEvents: 0, knownAt: T0, computedAt: T0 };
    const record: RevisionRecord = { ...previous, revision: 3, status: 'amended', reason: 'amend', measures: { orders: '2' }, events: 2, lateEvents: 1 };
    const amended = await publishAmendedAlert(js, { report: 'revenue', day: '2030-01-14', groupKey: '["a"]', previous, record });
    const rows = await waitFor(async () => {
      const result = await ch.client.query({ query: `SELECT id, kind, source, toUnixTimestamp64Milli(at) AS at FROM ${ch.db}.alerts FINAL WHERE kind = 'ReportAmended'`, format: 'JSONEachRow' });
      const found = await result.json<{ id: string; kind: string; source: string; at: string }>();
      return found.length > 0 && found;
    }, 60_000, 'the amended alert in ClickHouse');
    expect(rows).toEqual([{ id: amended.id, kind: 'ReportAmended', source: 'revenue', at: String(T0) }]);
  });

  it('keeps p50/p95/p99 and late share per source over sliding windows, in delay_stats and on /metrics', async () => {
    const now = clock.now();
    const delays = Array.from({ length: 1_000 }, (_, i) => i * 10_000);
    // received over [now - 60s, now - 20s): they stay inside the sliding 5m window for four minutes of a slow machine
    await publish(delays.map((d, i) => event('stats-a', 'ping', now - MIN + i * 40 - d, now - MIN + i * 40)));
    const rows = await waitFor(async () => {
      const written = await monitor.flushStats();
      const mine = written.filter((r) => r.source === 'stats-a' && r.windowLabel === '5m');
      return mine[0]?.events === 1_000 && mine;
    }, 150_000, 'delay stats for stats-a');
    const sorted = [...delays].sort((a, b) => a - b);
    const exact = (q: number) => sorted[Math.ceil(q * sorted.length) - 1]!;
    const row = rows[0]!;
    expect(row).toMatchObject({ events: 1_000, late: 639, lateShare: 0.639, worstMs: 9_990_000 });
    for (const [q, value] of [[0.5, row.p50], [0.95, row.p95], [0.99, row.p99]] as const) expect(Math.abs(value - exact(q))).toBeLessThanOrEqual(exact(q) * 0.01);
    const stored = await (await ch.client.query({
      query: `SELECT window_label, events, late_share FROM ${ch.db}.delay_stats FINAL WHERE source = 'stats-a' AND computed_at = fromUnixTimestamp64Milli({at:Int64}) ORDER BY window_ms`,
      query_params: { at: row.computedAt },
      format: 'JSONEachRow',
    })).json();
    expect(stored).toEqual([{ window_label: '5m', events: '1000', late_share: 0.639 }, { window_label: '1h', events: '1000', late_share: 0.639 }]);
    const text = await registry.metrics();
    const p95 = Number(/tidemark_delay_seconds\{source="stats-a",window="5m",quantile="0.95"\} (\S+)/.exec(text)?.[1]);
    expect(Math.abs(p95 - exact(0.95) / 1000)).toBeLessThanOrEqual((exact(0.95) / 1000) * 0.01);
    expect(text).toContain('tidemark_delay_late_ratio{source="stats-a",window="1h"} 0.639');
  });

  it('has every alert on ALERTS exactly once, and each in the alerts table', async () => {
    // alerts of three kinds to hold on to: a late sale, a silent feed, and the late group's resolve
    const at = clock.now();
    await publish([event('once-1', 'sale', at - 2 * HOUR, at)]);
    await drained();
    advanceTo(T0 + 10 * MIN + 2_000);
    await waitForAlerts<DelayedEventAlert>('DelayedEvent', 'once-1', 1);
    await waitForAlerts<MissingDataAlert>('MissingData', 'feed-1', 1);
    advanceTo(clock.now() + 5 * MIN + 2_000);
    await waitForAlerts<ResolvedAlert>('Resolved', 'once-1', 1);
    await settle();
    const onStream = (await readAll(js, jsm, 'ALERTS')).map((m) => json<{ id: string }>(m).id);
    expect(new Set(onStream).size).toBe(onStream.length);
    const inTable = await waitFor(async () => {
      const result = await ch.client.query({ query: `SELECT id FROM ${ch.db}.alerts FINAL ORDER BY id`, format: 'JSONEachRow' });
      const ids = (await result.json<{ id: string }>()).map((r) => r.id);
      return ids.length >= onStream.length && ids;
    }, 60_000, 'every alert in ClickHouse');
    expect(inTable).toEqual([...onStream].sort());
  });
});
