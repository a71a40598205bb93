import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { groupKey } from '../../src/processors/logic/group.ts';
import { addEvent, emptyState, finalize, type MeasureState } from '../../src/processors/logic/measures.ts';
import { closeDue, nextRevision, type Observation, type RevisionRecord } from '../../src/processors/logic/revisions.ts';
import { businessDay, closeAtMs } from '../../src/core/business-day.ts';
import { makeEvent, makeReport } from '../support/fixtures.ts';
import { dayGroupKey, oracleDaily } from '../support/oracle.ts';

const CLOSE = 1_000;
const seen = (sum: string, events: number, knownAt: number): Observation => ({ measures: { amount: sum }, events, knownAt });

describe('revision decisions', () => {
  it('publishes nothing for an empty state', () => {
    expect(nextRevision(null, { measures: {}, events: 0, knownAt: 0 }, 10, CLOSE)).toBeNull();
  });

  it('walks preliminary → late preliminary → final → amended', () => {
    const r1 = nextRevision(null, seen('10', 2, 5), 10, CLOSE)!;
    expect(r1).toEqual({ alert: false, record: { revision: 1, status: 'preliminary', reason: 'new', measures: { amount: '10' }, events: 2, lateEvents: 0, knownAt: 5, computedAt: 10 } });

    expect(nextRevision(r1.record, seen('10', 3, 20), 21, CLOSE)).toBeNull(); // a zero amount: no figure moved
    const r2 = nextRevision(r1.record, seen('12.5', 4, 30), 31, CLOSE)!;
    expect(r2.record).toMatchObject({ revision: 2, status: 'preliminary', reason: 'late', events: 4, lateEvents: 2, knownAt: 30 });

    expect(closeDue(r2.record, CLOSE - 1, CLOSE)).toBeNull();
    const r3 = closeDue(r2.record, CLOSE, CLOSE)!;
    expect(r3).toEqual({ ...r2.record, revision: 3, status: 'final', reason: 'close', computedAt: CLOSE });
    expect(closeDue(r3, CLOSE + 5, CLOSE)).toBeNull();
    expect(nextRevision(r3, seen('12.5', 5, 1_100), 1_101, CLOSE)).toBeNull();

    const r4 = nextRevision(r3, seen('13', 6, 1_200), 1_201, CLOSE)!;
    expect(r4).toEqual({ alert: true, record: { revision: 4, status: 'amended', reason: 'amend', measures: { amount: '13' }, events: 6, lateEvents: 4, knownAt: 1_200, computedAt: 1_201 } });
    const r5 = nextRevision(r4.record, seen('14', 7, 1_300), 1_301, CLOSE)!;
    expect(r5.record).toMatchObject({ revision: 5, status: 'amended', reason: 'amend' });
    expect(r5.alert).toBe(true);
    expect(closeDue(r5.record, 5_000, CLOSE)).toBeNull();
  });

  it('makes the final from a preliminary at close even when values changed in the same batch', () => {
    const r1 = nextRevision(null, seen('1', 1, 5), 10, CLOSE)!.record;
    expect(nextRevision(r1, seen('1', 1, 5), CLOSE, CLOSE)).toEqual({ alert: false, record: { ...r1, revision: 2, status: 'final', reason: 'close', computedAt: CLOSE } });
    expect(nextRevision(r1, seen('3', 2, 990), CLOSE + 1, CLOSE)!.record).toMatchObject({ revision: 2, status: 'final', reason: 'close', measures: { amount: '3' }, lateEvents: 1 });
  });

  it('starts a group first seen after close at revision 1 amended, with an alert', () => {
    expect(nextRevision(null, seen('7', 3, 2_000), 2_001, CLOSE)).toEqual({
      alert: true,
      record: { revision: 1, status: 'amended', reason: 'amend', measures: { amount: '7' }, events: 3, lateEvents: 3, knownAt: 2_000, computedAt: 2_001 },
    });
  });

  it('never goes back to preliminary, even if the close moves later', () => {
    const final = closeDue(nextRevision(null, seen('1', 1, 5), 10, CLOSE)!.record, CLOSE, CLOSE)!;
    expect(nextRevision(final, seen('2', 2, 20), 30, 10 * CLOSE)!.record).toMatchObject({ revision: 3, status: 'amended' });
  });

  it('detects a change in the set of measures, not only in values', () => {
    const r1 = nextRevision(null, { measures: { amount: '1' }, events: 1, knownAt: 1 }, 2, CLOSE)!.record;
    expect(nextRevision(r1, { measures: { amount: '1', lo: '1' }, events: 1, knownAt: 1 }, 3, CLOSE)!.record.revision).toBe(2);
  });

  it('marks a replay with reason replay and raises no alert', () => {
    const opts = { replay: true };
    const r1 = nextRevision(null, seen('1', 1, 5), 2_000, CLOSE, opts)!;
    expect(r1).toMatchObject({ alert: false, record: { revision: 1, status: 'amended', reason: 'replay' } });
    const p1 = nextRevision(null, seen('1', 1, 5), 10, CLOSE, opts)!.record;
    expect(p1).toMatchObject({ status: 'preliminary', reason: 'replay' });
    expect(closeDue(p1, CLOSE, CLOSE, opts)).toMatchObject({ status: 'final', reason: 'replay' });
    const r2 = nextRevision(r1.record, seen('5', 1, 5), 2_001, CLOSE, opts)!;
    expect(r2).toMatchObject({ alert: false, record: { revision: 2, status: 'amended', reason: 'replay', lateEvents: 1 } });
  });
});

const DAY = 86_400_000;
const BASE = Date.parse('2026-11-20T00:00:00Z');
const report = makeReport({
  groupBy: ['source'],
  timeZone: 'UTC',
  close: { after: '1d' },
  measures: { amount: { fn: 'sum', field: 'amount' }, orders: { fn: 'count' }, top: { fn: 'max', field: 'amount' }, buyers: { fn: 'uniq', field: 'buyer' } },
});

const arrival = fc.record({
  gap: fc.integer({ min: 1, max: 10 * 3_600_000 }),
  day: fc.integer({ min: 0, max: 1 }),
  source: fc.constantFrom('a', 'b'),
  amount: fc.constantFrom<unknown>('0', '0.00', '1.10', '-2', '5', 'x', undefined),
  buyer: fc.constantFrom('p', 'q', 'r'),
  cut: fc.boolean(),
  lag: fc.integer({ min: 0, max: 3_600_000 }),
  tick: fc.boolean(),
});

interface Tracked { state: MeasureState; closeAt: number; records: RevisionRecord[]; alerts: number }

describe('revision properties (fast-check, seeded)', () => {
  it('over any arrival sequence: gap-free, monotonic, as-of consistent, final values equal the oracle', () => {
    const reasonsSeen = new Set<string>();
    fc.assert(
      fc.property(fc.array(arrival, { minLength: 1, maxLength: 60, size: 'medium' }), (arrivals) => {
        let receivedAt = BASE;
        const events: TidemarkEvent[] = arrivals.map((a) => {
          receivedAt += a.gap; // strictly increasing: a revision's knownAt then splits the events exactly
          return makeEvent({ source: a.source, occurredAt: BASE + a.day * DAY + (a.gap % DAY), receivedAt, data: a.amount === undefined ? { buyer: a.buyer } : { amount: a.amount, buyer: a.buyer } });
        });
        const tracked = new Map<string, Tracked>();
        const clock = (now: number) => {
          for (const t of tracked.values()) {
            const record = closeDue(t.records.at(-1) ?? null, now, t.closeAt);
            if (record) t.records.push(record);
          }
        };
        let now = BASE;
        let batch: TidemarkEvent[] = [];
        arrivals.forEach((a, i) => {
          batch.push(events[i]!);
          if (!a.cut && i < arrivals.length - 1) return;
          now = Math.max(now, events[i]!.receivedAt + a.lag);
          if (a.tick) clock(now);
          const touched = new Set<string>();
          for (const event of batch) {
            const day = businessDay(event.occurredAt, report.timeZone);
            const key = dayGroupKey(day, groupKey(report, event));
            if (!tracked.has(key)) tracked.set(key, { state: emptyState(report), closeAt: closeAtMs(day, report), records: [], alerts: 0 });
            addEvent(tracked.get(key)!.state, report, event);
            touched.add(key);
          }
          for (const key of touched) {
            const t = tracked.get(key)!;
            const decision = nextRevision(t.records.at(-1) ?? null, { measures: finalize(t.state, report), events: t.state.events, knownAt: t.state.knownAt! }, now, t.closeAt);
            if (decision) {
              t.records.push(decision.record);
              if (decision.alert) t.alerts += 1;
            }
          }
          batch = [];
        });
        clock(Number.MAX_SAFE_INTEGER);

        const finals = oracleDaily(report, events);
        expect([...tracked.keys()].sort()).toEqual([...finals.keys()].sort());
        for (const [key, t] of tracked) {
          const { records } = t;
          expect(records.map((r) => r.revision)).toEqual(records.map((_, i) => i + 1));
          const statuses = records.map((r) => r.status).join(' ');
          expect(statuses).toMatch(/^(preliminary( preliminary)* final( amended)*|amended( amended)*)$/);
          expect(t.alerts).toBe(records.filter((r) => r.status === 'amended').length);
          records.forEach((record, i) => {
            const previous = records[i - 1];
            if (previous) expect(JSON.stringify(record.measures) !== JSON.stringify(previous.measures) || record.status !== previous.status).toBe(true);
            if (previous) expect(record.knownAt).toBeGreaterThanOrEqual(previous.knownAt);
            const asOf = oracleDaily(report, events, record.knownAt).get(key)!;
            expect(record.measures).toEqual(asOf.measures);
            expect(record.events).toBe(asOf.events);
            const onTime = records[0]!.status === 'preliminary' ? records[0]!.events : 0;
            expect(record.lateEvents).toBe(record.events - onTime);
          });
          expect(records.at(-1)!.measures).toEqual(finals.get(key)!.measures);
          expect(records.at(-1)!.status).not.toBe('preliminary');
          for (const [i, r] of records.entries()) reasonsSeen.add(i === 0 ? `first:${r.reason}` : r.reason);
        }
      }),
      { seed: 42, numRuns: 300 },
    );
    // The runs must have reached every path, or the property above proves little.
    expect([...reasonsSeen].sort()).toEqual(['amend', 'close', 'first:amend', 'first:new', 'late']);
  });
});
