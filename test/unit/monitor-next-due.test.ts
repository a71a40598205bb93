import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { advanceDaily, initialDaily } from '../../src/monitor/daily.ts';
import { advanceDeadline, initialDeadline } from '../../src/monitor/deadlines.ts';
import { applyLateBatch, emptyDelayed, fireDueGroup, type DelayedState } from '../../src/monitor/delayed.ts';
import { advanceEvery, initialEvery } from '../../src/monitor/every.ts';
import { dailyDue, deadlineDue, delayedDue, everyDue, wakeAt } from '../../src/monitor/next-due.ts';
import { dailyDeadline, reportDeadline } from '../../src/monitor/schedule.ts';

/**
 * The loop sleeps until the instant next-due.ts names: these check it against the
 * checks themselves (the advance functions): nothing is due a millisecond before that
 * instant, and something is at it. So the monitor neither wakes late nor misses one.
 */
const T0 = Date.parse('2030-01-15T02:00:00+08:00');
const clean = <T extends { outbox: unknown[] }>(s: T): T => ({ ...s, outbox: [] });

describe('next due instant of each monitor check', () => {
  it('every: the next slot is judged exactly when the watermark reaches its end', () => {
    fc.assert(fc.property(fc.integer({ min: 1_000, max: 3_600_000 }), fc.integer({ min: 0, max: 86_400_000 }), fc.array(fc.integer({ min: 0, max: 10_000_000 }), { maxLength: 5 }), (every, since, steps) => {
      let state = initialEvery(T0 + since, every);
      let watermark = T0 + since;
      for (const step of steps) {
        watermark += step;
        state = clean(advanceEvery(state, { sla: 's', source: 'a', every, watermark }) ?? state);
      }
      const due = everyDue(state, every).watermark;
      expect(due).toBeGreaterThan(watermark);
      expect(advanceEvery(state, { sla: 's', source: 'a', every, watermark: due - 1 })).toBeNull();
      expect(advanceEvery(state, { sla: 's', source: 'a', every, watermark: due })).not.toBeNull();
    }), { seed: 25, numRuns: 500 });
  });

  it('dailyBy: the next day is judged exactly at its deadline (any zone, DST days included)', () => {
    const zones = ['Asia/Taipei', 'Europe/Berlin', 'America/New_York', 'UTC'];
    fc.assert(fc.property(fc.constantFrom(...zones), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }), fc.integer({ min: 0, max: 400 }), (zone, hour, minute, offsetDays) => {
      const deadlineOf = (day: string) => dailyDeadline(day, { hour, minute }, zone);
      const checked = new Date(Date.UTC(2030, 0, 1) + offsetDays * 86_400_000).toISOString().slice(0, 10);
      const state = initialDaily(checked);
      const due = dailyDue(state, deadlineOf).watermark;
      expect(advanceDaily(state, { sla: 's', source: 'a', watermark: due - 1, deadlineOf })).toBeNull();
      expect(advanceDaily(state, { sla: 's', source: 'a', watermark: due, deadlineOf })?.outbox).toHaveLength(1);
    }), { seed: 25, numRuns: 300 });
  });

  it('report deadline: the next day is judged exactly at day end + by', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 5 * 86_400_000 }), fc.integer({ min: 0, max: 400 }), (by, offsetDays) => {
      const deadlineOf = (day: string) => reportDeadline(day, 'Asia/Taipei', by);
      const checked = new Date(Date.UTC(2030, 0, 1) + offsetDays * 86_400_000).toISOString().slice(0, 10);
      const state = initialDeadline(checked);
      const due = deadlineDue(state, deadlineOf).clock;
      const ctx = (now: number) => ({ sla: 's', report: 'r', status: 'final' as const, now, deadlineOf });
      expect(advanceDeadline(state, ctx(due - 1), new Map())).toBeNull();
      expect(advanceDeadline(state, ctx(due), new Map())?.outbox).toHaveLength(1);
    }), { seed: 25, numRuns: 300 });
  });

  it('DelayedEvent group: groupWait, then groupInterval, then resolveAfter on the watermark', () => {
    const ms = { groupWaitMs: 10_000, groupIntervalMs: 300_000, resolveAfterMs: 300_000 };
    fc.assert(fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 1, max: 50 }), (firstAt, count) => {
      const events = Array.from({ length: count }, (_, i) => ({ seq: i + 1, receivedAt: T0 + firstAt + i, delayMs: 7_200_000, day: '2030-01-14', reportDays: [], revisedDays: [] }));
      let state: DelayedState = applyLateBatch(emptyDelayed(), events, [[1, count]], 0)!;
      const ctx = (now: number, watermark: number) => ({ sla: 's', source: 'a', maxDelayMs: 3_600_000, now, watermark, ...ms });
      const first = delayedDue(state, ms).clock;
      expect(first).toBe(T0 + firstAt + ms.groupWaitMs);
      expect(fireDueGroup(state, ctx(first - 1, first - 1))).toBeNull();
      state = clean(fireDueGroup(state, ctx(first, first))!);
      // nothing new: no update is due; the group resolves on the watermark
      const resolve = delayedDue(state, ms);
      expect(resolve.clock).toBe(Number.POSITIVE_INFINITY);
      expect(fireDueGroup(state, ctx(first, resolve.watermark - 1))).toBeNull();
      expect(fireDueGroup(state, ctx(first, resolve.watermark))?.outbox[0]?.kind).toBe('Resolved');
      // a later late event: an update groupInterval after the first alert
      const more = applyLateBatch(state, [{ ...events[0]!, seq: count + 1, receivedAt: first + 1 }], [[count + 1, count + 1]], 0)!;
      const update = delayedDue(more, ms).clock;
      expect(update).toBe(first + ms.groupIntervalMs);
      expect(fireDueGroup(more, ctx(update - 1, update - 1))).toBeNull();
      expect(fireDueGroup(more, ctx(update, update))?.outbox.at(-1)?.kind).toBe('DelayedEvent');
    }), { seed: 25, numRuns: 200 });
  });

  it('wakes at the earliest future due: clock dues as they are, watermark dues only while caught up', () => {
    const now = 1_000_000;
    const watermark = now - 10_000;
    expect(wakeAt([{ clock: now + 500, watermark: Infinity }, { clock: Infinity, watermark: watermark + 200 }], now, watermark, true)).toBe(now + 200);
    // behind, the watermark moves as events are merged, not with the clock: the tick paces the checks
    expect(wakeAt([{ clock: now + 500, watermark: Infinity }, { clock: Infinity, watermark: watermark + 200 }], now, watermark, false)).toBe(now + 500);
    // dues already passed were handled by the check that named them
    expect(wakeAt([{ clock: now, watermark: watermark }], now, watermark, true)).toBe(Infinity);
  });
});
