import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTidemarkError } from '../../src/core/errors.ts';
import { loadConfig } from '../../src/core/config.ts';
import type { Alert } from '../../src/monitor/alerts.ts';
import { alertKindSubject } from '../../src/core/alert-kinds.ts';
import { advanceDaily, initialDaily, markDaily } from '../../src/monitor/daily.ts';
import { advanceDeadline, daysToCheck, initialDeadline, type GroupProgress } from '../../src/monitor/deadlines.ts';
import { applyLateBatch, emptyDelayed, fireDueGroup, MAX_LISTED, type DelayedState, type SequencedLateEvent } from '../../src/monitor/delayed.ts';
import { advanceEvery, initialEvery, markEvery, type EveryState } from '../../src/monitor/every.ts';
import { globMatcher } from '../../src/core/glob.ts';
import { addDelay, mergeHistograms, percentile, type Histogram } from '../../src/monitor/histogram.ts';
import { dailyDeadline, firstDayDueAfter, reportDeadline } from '../../src/monitor/schedule.ts';
import { seqRanges } from '../../src/nats/seq-ranges.ts';
import { compileSla, slaMatcher } from '../../src/monitor/sla.ts';
import { createSliceAccumulator, windowStats } from '../../src/monitor/slices.ts';
import { alertRow } from '../../src/sinks/clickhouse/alerts-table.ts';
import { signBody, verifySignature, webhookRoutes } from '../../src/sinks/webhooks.ts';
import { testConfig } from '../harness/config.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;

const exactPercentile = (values: number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!;
};
const histOf = (values: number[]): Histogram => {
  const h: Histogram = {};
  for (const v of values) addDelay(h, v);
  return h;
};

describe('SLA matching', () => {
  it('matches sources and types by glob, literally otherwise', () => {
    expect(['store-17', 'store-', 'shop-1', 'a.store-1'].filter(globMatcher('store-*'))).toEqual(['store-17', 'store-']);
    expect(['a', 'a.b.c', ''].filter(globMatcher('*'))).toEqual(['a', 'a.b.c', '']);
    expect(['ab', 'abc', 'a.c'].filter(globMatcher('a?c'))).toEqual(['abc', 'a.c']);
    expect(['x+y', 'xxy'].filter(globMatcher('x+y'))).toEqual(['x+y']);
  });

  it('gives every SLA a stable id and finds the SLAs of an event', () => {
    const config = testConfig({ slas: [{ source: 'store-*', type: 'sale', maxDelay: '1h' }, { name: 'feed', source: 'feed-1', expect: { every: '5m' } }] });
    const slas = config.slas.map(compileSla);
    expect(slas[0]!.id).toMatch(/^sla-[0-9a-f]{10}$/);
    expect(compileSla(config.slas[0]!).id).toBe(slas[0]!.id);
    expect(slas[1]).toMatchObject({ id: 'feed', literalSource: 'feed-1', every: 300_000 });
    const match = slaMatcher(slas);
    expect(match('store-3', 'sale').map((s) => s.id)).toEqual([slas[0]!.id]);
    expect(match('store-3', 'refund')).toEqual([]);
    expect(match('feed-1', 'anything').map((s) => s.id)).toEqual(['feed']);
  });
});

describe('config', () => {
  it('keeps the shipped config valid and fills in the monitor defaults', () => {
    const config = loadConfig('config/tidemark.yaml', {});
    expect(config.monitor).toMatchObject({ groupWait: 10_000, groupInterval: 300_000, resolveAfter: 300_000, tick: 1_000, stats: { every: 10_000, windows: [300_000, 3_600_000] } });
    expect(testConfig({ monitor: { webhooks: [{ url: 'http://127.0.0.1/h' }] } }).monitor.webhooks[0]).toMatchObject({ maxAttempts: 3, retryFor: 86_400_000, redeliverAfter: 10_000, redeliverMax: 600_000 });
    expect(config.slas.length).toBeGreaterThan(0);
  });

  it('names the key of a deadline on an unknown report, of twin SLAs and of bad schedules', () => {
    const bad = (raw: Record<string, unknown>) => {
      try {
        testConfig(raw);
      } catch (err) {
        expect(isTidemarkError(err, 'CONFIG_INVALID')).toBe(true);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(bad({ slas: [{ deadlines: [{ report: 'nope', by: '1h' }] }] })).toMatch(/slas\[0\]\.deadlines\[0\]\.report: no report named "nope"/);
    expect(bad({ slas: [{ source: 'a', maxDelay: '1h' }, { source: 'a', maxDelay: '2h' }] })).toMatch(/slas\[1\]\.name: another SLA has the same source and type/);
    expect(bad({ slas: [{ expect: { dailyBy: '25:00' } }] })).toMatch(/slas\[0\]\.expect\.dailyBy/);
    expect(bad({ monitor: { groupInterval: '0s' } })).toMatch(/monitor\.groupInterval: must be positive/);
    expect(bad({ monitor: { webhooks: [{ url: 'http://127.0.0.1/a' }, { url: 'http://127.0.0.1/a' }] } })).toMatch(/monitor\.webhooks\[1\]\.name: another webhook already uses webhook-/);
    expect(bad({ monitor: { webhooks: [{ url: 'not a url' }] } })).toMatch(/monitor\.webhooks\[0\]\.url/);
  });
});

describe('delay histogram', () => {
  it('reads any percentile within 1% (plus a millisecond) of the exact one', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -5_000, max: 30 * 86_400_000 }), { minLength: 1, maxLength: 400 }), fc.constantFrom(0.5, 0.95, 0.99, 1), (values, q) => {
        const exact = Math.max(0, exactPercentile(values, q));
        expect(Math.abs(percentile(histOf(values), q)! - exact)).toBeLessThanOrEqual(exact * 0.01 + 1);
      }),
      { seed: 11, numRuns: 300 },
    );
  });

  it('merges partial histograms into exactly the histogram of the whole', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(10_000_000)), fc.array(fc.nat(10_000_000)), (a, b) => {
        expect(mergeHistograms(histOf(a), histOf(b))).toEqual(histOf([...a, ...b]));
        expect(mergeHistograms(histOf(a), histOf(b))).toEqual(mergeHistograms(histOf(b), histOf(a)));
      }),
      { seed: 12, numRuns: 200 },
    );
    expect(percentile({}, 0.5)).toBeNull();
  });
});

describe('DelayedEvent grouping', () => {
  const WAIT = 10_000;
  const INTERVAL = 5 * MIN;
  const RESOLVE = 5 * MIN;
  const ctx = { sla: 'late', source: 'store-1', maxDelayMs: HOUR, groupWaitMs: WAIT, groupIntervalMs: INTERVAL, resolveAfterMs: RESOLVE };
  const late = (seq: number, receivedAt: number, delayMs: number, extra: Partial<SequencedLateEvent> = {}): SequencedLateEvent => ({
    seq, receivedAt, delayMs, day: '2030-01-01', reportDays: [], revisedDays: [], ...extra,
  });
  /** `now` is the injected clock; the watermark trails it by the grace */
  const fire = (state: DelayedState, now: number, watermark = now - 10_000) => fireDueGroup(state, { ...ctx, now, watermark });
  const alertsOf = (state: DelayedState | null) => (state?.outbox ?? []) as Array<Extract<Alert, { kind: 'DelayedEvent' }>>;
  const add = (state: DelayedState, events: SequencedLateEvent[]) => applyLateBatch(state, events, seqRanges(events.map((e) => e.seq)), 0) ?? state;
  const sent = (state: DelayedState): DelayedState => ({ ...state, outbox: [] });
  const T = Date.parse('2030-01-01T12:00:00Z');
  const GROUP = 'delayed:late:store-1:2030-01-01T12:00:00.000Z';

  it('adds the same events to the same group whichever instance merges which batch, in any order, redelivered or not', () => {
    const events = Array.from({ length: 60 }, (_, i) => late(i + 1, T + 1_000 + i * 10_000, HOUR + (i * 7_919) % 50_000, { day: `2030-01-${String(1 + (i % 3)).padStart(2, '0')}` }));
    const whole = add(emptyDelayed(), events);
    fc.assert(
      fc.property(fc.shuffledSubarray(events.map((_, i) => i), { minLength: 0, maxLength: 6 }), fc.integer({ min: 0, max: 1_000 }), (cuts, shuffleSeed) => {
        const bounds = [0, ...cuts.sort((a, b) => a - b), events.length];
        const batches = bounds.slice(1).map((end, i) => events.slice(bounds[i], end)).filter((b) => b.length);
        // every batch merged in a scrambled order, and one of them delivered twice
        const order = batches.map((_, i) => i).sort((a, b) => ((a * 31 + shuffleSeed) % 7) - ((b * 31 + shuffleSeed) % 7));
        let state = emptyDelayed();
        for (const i of [...order, order[0]!]) state = add(state, batches[i]!);
        expect(state.group!.total).toEqual(whole.group!.total);
        expect(state.group!.fresh).toEqual(whole.group!.fresh);
      }),
      { seed: 21, numRuns: 100 },
    );
  });

  it('sends the first alert groupWait after the first late event, with what is known then', () => {
    const delays = Array.from({ length: 1_000 }, (_, i) => HOUR + i * 1_000);
    let state = add(emptyDelayed(), delays.slice(0, 600).map((d, i) => late(i + 1, T + i * 10, d)));
    expect(fire(state, T + WAIT - 1)).toBeNull();
    state = fire(state, T + WAIT)!;
    expect(alertsOf(state)).toHaveLength(1);
    const first = alertsOf(state)[0]!;
    const known = delays.slice(0, 600);
    expect(first).toMatchObject({ id: GROUP, group: GROUP, sequence: 1, at: T, count: 600, totalCount: 600, worstDelayMs: Math.max(...known), firstReceivedAt: T, lastReceivedAt: T + 5_990, groupStartedAt: T });
    expect(first.updates).toBeUndefined();
    expect(Math.abs(first.p95DelayMs - exactPercentile(known, 0.95))).toBeLessThanOrEqual(exactPercentile(known, 0.95) * 0.01);
    // a second monitor (or a restart) sees the group as sent: nothing more is due
    expect(fire(sent(state), T + WAIT + 1)).toBeNull();
  });

  it('sends updates with the new counts at most every groupInterval, each referencing the one it updates', () => {
    let state = sent(fire(add(emptyDelayed(), [late(1, T, HOUR + 5)]), T + WAIT)!);
    state = add(state, [late(2, T + MIN, HOUR + 7), late(3, T + 2 * MIN, HOUR + 3)]);
    expect(fire(state, T + WAIT + INTERVAL - 1)).toBeNull();
    state = fire(state, T + WAIT + INTERVAL)!;
    expect(alertsOf(state)).toMatchObject([{ id: `${GROUP}#2`, sequence: 2, updates: GROUP, count: 2, totalCount: 3, worstDelayMs: HOUR + 7, totalWorstDelayMs: HOUR + 7, at: T + MIN }]);
    state = add(sent(state), [late(4, T + 6 * MIN, HOUR + 1)]);
    const third = fire(state, T + WAIT + 2 * INTERVAL)!;
    expect(alertsOf(third)).toMatchObject([{ id: `${GROUP}#3`, sequence: 3, updates: `${GROUP}#2`, count: 1, totalCount: 4 }]);
  });

  it('goes quiet when nothing new came, and resolves once no late event was received for resolveAfter', () => {
    let state = sent(fire(add(emptyDelayed(), [late(1, T, HOUR + 5)]), T + WAIT)!);
    // nothing new at the interval: no alert
    expect(fire(state, T + WAIT + INTERVAL, T + RESOLVE - 1)).toBeNull();
    state = fire(state, T + RESOLVE + 10_000, T + RESOLVE)!;
    expect(state.outbox).toMatchObject([{ id: `resolved:${GROUP}`, kind: 'Resolved', resolves: GROUP, resolvedKind: 'DelayedEvent', alerts: 1, totalCount: 1, at: T + RESOLVE }]);
    expect(state.group).toBeNull();
    // the next late event opens a new group with an id of its own
    state = fire(add(sent(state), [late(2, T + HOUR, HOUR + 1)]), T + HOUR + WAIT)!;
    expect(alertsOf(state).map((a) => [a.id, a.sequence, a.count])).toEqual([['delayed:late:store-1:2030-01-01T13:00:00.000Z', 1, 1]]);
  });

  it('sends what is still new before resolving a group', () => {
    let state = sent(fire(add(emptyDelayed(), [late(1, T, HOUR + 5)]), T + WAIT)!);
    state = add(state, [late(2, T + 30_000, HOUR + 5)]);
    // the resolve time has come on the watermark, but an update is still owed: it goes first
    expect(fire(state, T + WAIT + 60_000, T + 30_000 + RESOLVE)).toBeNull();
    state = sent(fire(state, T + WAIT + INTERVAL, T + 30_000 + RESOLVE)!);
    expect(fire(state, T + WAIT + INTERVAL, T + 30_000 + RESOLVE)!.outbox).toMatchObject([{ kind: 'Resolved', totalCount: 2, alerts: 2 }]);
  });

  it('keeps the smallest days in bounded lists and counts events that hit an already published day', () => {
    const events = Array.from({ length: 150 }, (_, i) => {
      const day = new Date(Date.UTC(2030, 0, 1) + i * 86_400_000).toISOString().slice(0, 10);
      return late(i + 1, T, HOUR + 1, { day, reportDays: [`revenue/${day}`], revisedDays: i % 2 ? [`revenue/${day}`] : [] });
    });
    const alert = alertsOf(fire(add(emptyDelayed(), events), T + WAIT))[0]!;
    expect(alert.days).toHaveLength(MAX_LISTED);
    expect(alert.days[0]).toBe('2030-01-01');
    expect(alert.days.at(-1)).toBe('2030-04-10');
    expect(alert.changedPublished).toBe(75);
    expect(alert.revisedDays[0]).toBe('revenue/2030-01-02');
  });

  it('keeps only merged ranges above the ack floor, and skips a redelivered batch', () => {
    expect(seqRanges([5, 1, 2, 3, 9, 10])).toEqual([[1, 3], [5, 5], [9, 10]]);
    const state = applyLateBatch(emptyDelayed(), [late(3, 0, HOUR + 1)], [[1, 4]], 0)!;
    expect(applyLateBatch(state, [late(3, 0, HOUR + 1)], [[1, 4]], 0)).toBeNull();
    expect(applyLateBatch(state, [late(8, 0, HOUR + 1)], [[5, 9]], 6)!.merged).toEqual([[1, 9]]);
    expect(applyLateBatch(state, [late(8, 0, HOUR + 1)], [[6, 9]], 5)!.merged).toEqual([[6, 9]]);
  });

  it('skips a copy that arrives after the ack floor passed it and its range was pruned (a batch slower than ackWait)', () => {
    const first = applyLateBatch(emptyDelayed(), [late(3, 0, HOUR + 1)], [[1, 4]], 0)!;
    const pruned = applyLateBatch(first, [late(8, 0, HOUR + 1)], [[5, 9]], 9)!;
    expect([pruned.merged, pruned.floor, pruned.group!.total.count]).toEqual([[], 9, 2]);
    // the copy of sequence 3 delivered before its ack: already counted
    expect(applyLateBatch(pruned, [late(3, 0, HOUR + 1)], [[1, 4]], 4)).toBeNull();
    expect(applyLateBatch(pruned, [late(10, 0, HOUR + 1)], [[10, 10]], 4)!.group!.total.count).toBe(3);
  });
});

describe('every-N expectations', () => {
  const EVERY = 5 * MIN;
  const ctx = (watermark: number) => ({ sla: 'feed', source: 'feed-1', every: EVERY, watermark });
  const kinds = (alerts: Alert[]) => alerts.map((a) => `${a.kind}@${a.at / MIN}m`);

  it('raises one MissingData per outage with no traffic at all, and resolves it when data comes', () => {
    let state: EveryState = initialEvery(2 * MIN, EVERY); // started inside [0, 5m): that interval is not judged
    expect(advanceEvery(state, ctx(10 * MIN - 1))).toBeNull();
    state = advanceEvery(state, ctx(10 * MIN))!;
    expect(kinds(state.outbox)).toEqual(['MissingData@10m']);
    expect(state.outbox[0]).toMatchObject({ id: 'missing:feed:feed-1:every:1970-01-01T00:05:00.000Z', windowStart: 5 * MIN, expectedBy: 10 * MIN });
    state = { ...advanceEvery({ ...state, outbox: [] }, ctx(60 * MIN))!, outbox: [] };
    expect(state.gap).not.toBeNull();
    state = markEvery(state, new Map([[60 * MIN, 61 * MIN]]))!;
    expect(advanceEvery(state, ctx(61 * MIN - 1))).toBeNull(); // arrival not yet known to be the first one
    const resolved = advanceEvery(state, ctx(61 * MIN))!;
    expect(resolved.outbox).toMatchObject([{ kind: 'Resolved', resolves: 'missing:feed:feed-1:every:1970-01-01T00:05:00.000Z', at: 61 * MIN, lateByMs: 51 * MIN }]);
    expect(resolved.gap).toBeNull();
  });

  it('finds every outage in a backlog judged at once, each at its own time', () => {
    let state = firstSeenEvery0();
    state = markEvery(state, new Map([[0, 1_000], [5 * MIN, 6 * MIN], [25 * MIN, 27 * MIN], [30 * MIN, 31 * MIN], [50 * MIN, 52 * MIN]]))!;
    expect(kinds(advanceEvery(state, ctx(58 * MIN))!.outbox)).toEqual(['MissingData@15m', 'Resolved@27m', 'MissingData@40m', 'Resolved@52m']);
  });

  it('raises the same alerts whether the watermark moves in many steps or one', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 119 }), { maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 20 * MIN }), { minLength: 1, maxLength: 30 }), (minutes, steps) => {
        const arrivals = new Map(minutes.map((m) => [Math.floor((m * MIN) / EVERY) * EVERY, m * MIN] as [number, number]));
        const base = markEvery(firstSeenEvery0(), arrivals) ?? firstSeenEvery0();
        const end = 120 * MIN;
        const once = advanceEvery(base, ctx(end))?.outbox ?? [];
        let state = base;
        let watermark = 0;
        for (const step of [...steps, end]) {
          watermark = Math.min(end, watermark + step);
          state = advanceEvery(state, ctx(watermark)) ?? state;
        }
        expect(state.outbox.map((a) => a.id)).toEqual(once.map((a) => a.id));
      }),
      { seed: 31, numRuns: 200 },
    );
  });

  const firstSeenEvery0 = (): EveryState => ({ checked: -EVERY, seen: {}, gap: null, outbox: [] });
});

describe('daily expectations', () => {
  const by = { hour: 6, minute: 0 };
  const tz = 'Asia/Taipei';
  const deadlineOf = (day: string) => dailyDeadline(day, by, tz);
  const ctx = (watermark: number) => ({ sla: 'nightly', source: 'store-9', watermark, deadlineOf });

  it('places D+1 HH:MM in the zone, across DST gaps too', () => {
    expect(new Date(deadlineOf('2030-01-14')).toISOString()).toBe('2030-01-14T22:00:00.000Z');
    expect(new Date(dailyDeadline('2026-03-07', { hour: 2, minute: 30 }, 'America/New_York')).toISOString()).toBe('2026-03-08T07:30:00.000Z');
    expect(firstDayDueAfter(Date.parse('2030-01-15T02:00:00+08:00'), tz, deadlineOf)).toBe('2030-01-14');
    expect(reportDeadline('2030-01-15', tz, 2 * HOUR)).toBe(Date.parse('2030-01-16T02:00:00+08:00'));
    // a deadline 73h after the day ends: days before the start whose deadline is still ahead are watched too
    expect(firstDayDueAfter(Date.parse('2030-01-15T02:00:00+08:00'), tz, (day) => reportDeadline(day, tz, 73 * HOUR))).toBe('2030-01-12');
  });

  it('raises MissingData at the deadline, Resolved at the late arrival; nothing for data on time', () => {
    let state = initialDaily('2030-01-13');
    state = markDaily(state, new Map([['2030-01-15', Date.parse('2030-01-16T03:00:00+08:00')]]))!;
    state = advanceDaily(state, ctx(Date.parse('2030-01-15T07:00:00+08:00')))!;
    expect(state.outbox).toMatchObject([{ kind: 'MissingData', day: '2030-01-14', at: deadlineOf('2030-01-14') }]);
    state = { ...state, outbox: [] };
    expect(markDaily(state, new Map([['2030-01-13', 1]]))).toBeNull();
    state = markDaily(state, new Map([['2030-01-14', Date.parse('2030-01-15T09:30:00+08:00')]]))!;
    state = advanceDaily(state, ctx(Date.parse('2030-01-16T06:00:00+08:00')))!;
    expect(state.outbox).toMatchObject([{ kind: 'Resolved', day: '2030-01-14', lateByMs: 3.5 * HOUR }]);
    expect(state).toMatchObject({ checked: '2030-01-15', open: {} });
  });

  it('catching up after downtime raises both the miss and its resolution, at their own times', () => {
    let state = markDaily(initialDaily('2030-01-13'), new Map([['2030-01-14', Date.parse('2030-01-15T08:00:00+08:00')]]))!;
    state = advanceDaily(state, ctx(Date.parse('2030-01-15T12:00:00+08:00')))!;
    expect(state.outbox.map((a) => [a.kind, new Date(a.at).toISOString()])).toEqual([
      ['MissingData', '2030-01-14T22:00:00.000Z'],
      ['Resolved', '2030-01-15T00:00:00.000Z'],
    ]);
  });
});

describe('report deadlines', () => {
  const deadlineOf = (day: string) => reportDeadline(day, 'UTC', 2 * HOUR);
  const at = (iso: string) => Date.parse(iso);
  const ctx = (now: number) => ({ sla: 'close', report: 'revenue', status: 'final' as const, now, deadlineOf });
  const group = (groupKey: string, status: string, reachedAt: string | null): GroupProgress => ({ groupKey, status, reachedAt: reachedAt ? at(reachedAt) : null });

  it('stays quiet when every group is final in time, and names the lagging groups otherwise', () => {
    const state = initialDeadline('2030-01-01');
    const now = at('2030-01-04T03:00:00Z');
    expect(daysToCheck(state, { now, deadlineOf })).toEqual(['2030-01-02', '2030-01-03']);
    const progress = new Map([
      ['2030-01-02', [group('["a"]', 'final', '2030-01-03T01:00:00Z'), group('["b"]', 'amended', '2030-01-03T01:30:00Z')]],
      ['2030-01-03', [group('["a"]', 'final', '2030-01-04T01:00:00Z'), group('["b"]', 'preliminary', null)]],
    ]);
    const next = advanceDeadline(state, ctx(now), progress)!;
    expect(next.outbox).toMatchObject([{ kind: 'DeadlineMissed', id: 'deadline:revenue:final:2030-01-03', day: '2030-01-03', at: at('2030-01-04T02:00:00Z'), lagging: [{ groupKey: '["b"]', status: 'preliminary' }] }]);
    expect(Object.keys(next.open)).toEqual(['2030-01-03']);
    const later = new Map([['2030-01-03', [group('["a"]', 'final', '2030-01-04T01:00:00Z'), group('["b"]', 'final', '2030-01-04T05:00:00Z')]]]);
    const resolved = advanceDeadline({ ...next, outbox: [] }, ctx(at('2030-01-04T05:00:01Z')), later)!;
    expect(resolved.outbox).toMatchObject([{ kind: 'Resolved', resolves: 'deadline:revenue:final:2030-01-03', lateByMs: 3 * HOUR }]);
    expect(resolved.open).toEqual({});
  });

  it('treats a day without any figures as missed', () => {
    const next = advanceDeadline(initialDeadline('2030-01-01'), ctx(at('2030-01-03T02:00:00Z')), new Map())!;
    expect(next.outbox).toMatchObject([{ kind: 'DeadlineMissed', day: '2030-01-02', lagging: [] }]);
  });
});

describe('delay statistics', () => {
  it('sums slices per source and reads late share and percentiles', () => {
    const acc = createSliceAccumulator(10_000);
    const delays = Array.from({ length: 1_000 }, (_, i) => i * 100);
    delays.forEach((d, i) => acc.add('s', 5_000 + i, d, d > 50_000));
    acc.add('t', 25_000, 7, false);
    const slices = acc.drain();
    expect(slices.map((s) => [s.source, s.sliceStart, s.events, s.late, s.worstMs])).toEqual([['s', 0, 1_000, 499, 99_900], ['t', 20_000, 1, 0, 7]]);
    expect(acc.drain()).toEqual([]);
    const stats = windowStats({ source: 's', events: 1_000, late: 499, worstMs: 99_900, hist: slices[0]!.hist });
    expect(stats.lateShare).toBe(0.499);
    for (const [q, value] of [[0.5, stats.p50], [0.95, stats.p95], [0.99, stats.p99]] as const) {
      expect(Math.abs(value - exactPercentile(delays, q))).toBeLessThanOrEqual(exactPercentile(delays, q) * 0.01);
    }
  });
});

describe('alert delivery pieces', () => {
  it('puts alerts on alerts.<kind>.<source>', () => {
    expect(alertKindSubject('DelayedEvent', 'store-17')).toBe('alerts.delayed.store-17');
    expect(alertKindSubject('MissingData', 'feed one.x')).toBe('alerts.missing.feed_one_x');
  });

  it('files any ALERTS message as a row, the processor\'s ReportAmended included', () => {
    const data = new TextEncoder().encode(JSON.stringify({ id: 'amended:revenue:2030-01-14:x:3', kind: 'ReportAmended', report: 'revenue', at: 1_000 }));
    expect(alertRow({ subject: 'alerts.amended.revenue', seq: 7, storedAt: 2_000, data })).toMatchObject({ id: 'amended:revenue:2030-01-14:x:3', kind: 'ReportAmended', source: 'revenue', sla: '', at: 1_000, raised_at: 2_000, seq: 7 });
    expect(alertRow({ subject: 'alerts.custom.thing', seq: 8, storedAt: 3_000, data: new TextEncoder().encode('not json') })).toMatchObject({ id: 'ALERTS-8', kind: 'custom', source: 'thing', at: 3_000, payload: 'not json' });
  });

  it('signs webhook bodies with HMAC-SHA256 and verifies them in constant time', () => {
    const header = signBody('s3cret', '1700000000000', '{"a":1}');
    expect(header).toMatch(/^sha256=[0-9a-f]{64}$/);
    const now = 1700000000000;
    expect(verifySignature('s3cret', '1700000000000', '{"a":1}', header, { now })).toBe(true);
    expect(verifySignature('s3cret', '1700000000001', '{"a":1}', header, { now })).toBe(false);
    expect(verifySignature('other', '1700000000000', '{"a":1}', header, { now })).toBe(false);
    expect(verifySignature('s3cret', '1700000000000', '{"a":1}', undefined, { now })).toBe(false);
  });

  it('routes webhooks by kind and source glob, with secrets from the environment', () => {
    const config = testConfig({ monitor: { webhooks: [{ url: 'http://x/a', kinds: ['MissingData'], sources: ['feed-*'], secretEnv: 'HOOK_SECRET' }, { url: 'http://x/b' }] } });
    const [a, b] = webhookRoutes(config.monitor.webhooks, { HOOK_SECRET: 'k' });
    expect(a!.secret).toBe('k');
    expect([a!.accepts({ kind: 'MissingData', source: 'feed-2' }), a!.accepts({ kind: 'MissingData', source: 'store' }), a!.accepts({ kind: 'Resolved', source: 'feed-2' })]).toEqual([true, false, false]);
    expect(b!.accepts({ kind: 'ReportAmended', source: 'revenue' })).toBe(true);
    expect(() => webhookRoutes(config.monitor.webhooks, {})).toThrow(/HOOK_SECRET is not set/);
  });
});
