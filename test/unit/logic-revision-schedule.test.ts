import { describe, expect, it } from 'vitest';
import { daysDue, dueAt, SCAN_EVENTS_PER_SECOND, type DayWait } from '../../src/processors/logic/revision-schedule.ts';

const day = (id: string, waitingSince: number, lastScan?: { rows: number; ms: number }, inFlight = false): DayWait => ({ id, waitingSince, coalesceMs: 1_000, lastScan, inFlight });
const ids = (days: DayWait[]) => days.map((d) => d.id);

describe('when the revisor recomputes a dirty day', () => {
  it('waits the coalescing interval, and a big day one scan per its events / SCAN_EVENTS_PER_SECOND', () => {
    expect(dueAt(day('late', 5_000))).toBe(6_000);
    expect(dueAt(day('today', 5_000, { rows: 3 * SCAN_EVENTS_PER_SECOND, ms: 40 }))).toBe(8_000);
    expect(ids(daysDue([day('late', 5_000)], 5_999))).toEqual([]);
    expect(ids(daysDue([day('late', 5_000)], 6_000))).toEqual(['late']);
    expect(ids(daysDue([day('late', 5_000, undefined, true)], 9_000))).toEqual([]);
  });

  it('lets a quicker day that falls due within a long scan go first', () => {
    // today, due now, last took 600 ms to scan; the late day falls due 200 ms from now
    const today = day('today', 9_000, { rows: 1_000, ms: 600 });
    const late = day('late', 9_200, { rows: 50, ms: 30 });
    expect(ids(daysDue([today, late], 10_000))).toEqual([]);
    // due now: the late day goes, today still waits while the late day has not started
    expect(ids(daysDue([today, late], 10_200))).toEqual(['late']);
    // once the late day is on its way, today's scan starts behind it
    expect(ids(daysDue([today, { ...late, inFlight: true }], 10_250))).toEqual(['today']);
  });

  it('does not yield to a day due later than its own scan would take, nor to a slower one, nor for long', () => {
    const today = day('today', 9_000, { rows: 1_000, ms: 600 });
    expect(ids(daysDue([today, day('late', 9_700, { rows: 50, ms: 30 })], 10_000))).toEqual(['today']);
    expect(ids(daysDue([today, day('other', 9_200, { rows: 9_000, ms: 700 })], 10_000))).toEqual(['today']);
    // a short scan never makes another day wait
    expect(ids(daysDue([day('today', 9_000, { rows: 1_000, ms: 99 }), day('late', 9_050, { rows: 5, ms: 5 })], 10_000))).toEqual(['today']);
    // one coalescing interval past its due time it goes whatever is about to fall due
    expect(ids(daysDue([today, day('late', 10_100, { rows: 50, ms: 30 })], 11_000))).toEqual(['today']);
    expect(ids(daysDue([today, day('late', 10_100, { rows: 50, ms: 30 })], 10_999))).toEqual([]);
  });
});
