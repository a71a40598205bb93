import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { Watermark, WindowStore, windowsFor, type WindowResult } from '../../src/processors/logic/windows.ts';
import { makeEvent, makeReport } from '../support/fixtures.ts';
import { oracleWindows, windowKey, type WindowStep } from '../support/oracle.ts';

const MIN = 60_000;

describe('windowsFor', () => {
  it('gives the epoch-aligned starts of the windows containing the instant, latest first', () => {
    expect(windowsFor(0, 60 * MIN, 5 * MIN)).toEqual(Array.from({ length: 12 }, (_, i) => (0 - i) * 5 * MIN));
    expect(windowsFor(7 * MIN, 15 * MIN, 5 * MIN)).toEqual([5 * MIN, 0, -5 * MIN]);
    expect(windowsFor(5 * MIN, 15 * MIN, 5 * MIN)).toEqual([5 * MIN, 0, -5 * MIN]);
    expect(windowsFor(-1, 10, 5)).toEqual([-5, -10]);
    expect(windowsFor(1_234, 1_000, 1_000)).toEqual([1_000]);
  });

  it('matches the window definition for any instant', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e12, max: 1e13 }), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 12 }), (t, slide, k) => {
        const size = slide * k;
        const starts = windowsFor(t, size, slide);
        expect(starts).toHaveLength(k);
        for (const s of starts) {
          expect(s % slide === 0).toBe(true); // === also takes -0, the remainder of a negative start
          expect(s <= t && t < s + size).toBe(true);
        }
      }),
      { seed: 5, numRuns: 500 },
    );
  });
});

describe('Watermark', () => {
  it('is the max event time minus the allowed lateness, and a straggler never lowers it', () => {
    const wm = new Watermark(10_000, 60_000);
    expect(wm.current).toBe(-Infinity);
    expect(wm.observe(100_000, 0)).toBe(90_000);
    expect(wm.observe(50_000, 1)).toBe(90_000);
    expect(wm.observe(120_000, 2)).toBe(110_000);
  });

  it('follows the clock from the last event time once event time is idle for idleMs', () => {
    const wm = new Watermark(10_000, 5_000);
    wm.observe(1_000_000, 2_000_000); // a source running 1000 s behind the clock
    expect(wm.tick(2_005_000)).toBe(990_000);
    expect(wm.tick(2_007_000)).toBe(992_000);
    expect(wm.observe(500_000, 2_008_000)).toBe(993_000); // a straggler is not progress: the clock keeps moving it
    expect(wm.observe(995_000, 2_009_000)).toBe(994_000);
    expect(wm.observe(1_010_000, 2_010_000)).toBe(1_000_000);
    expect(wm.tick(2_014_000)).toBe(1_000_000);
    expect(wm.tick(2_016_000)).toBe(1_001_000);
  });

  it('never decreases and is never behind the events', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 0, max: 5_000 }), fc.boolean())), (steps) => {
        const wm = new Watermark(1_000, 2_000);
        let now = 0;
        let last = -Infinity;
        let max = -Infinity;
        for (const [time, gap, isTick] of steps) {
          now += gap;
          const value = isTick ? wm.tick(now) : wm.observe(time, now);
          if (!isTick) max = Math.max(max, time);
          expect(value).toBeGreaterThanOrEqual(last);
          expect(value).toBeGreaterThanOrEqual(max - 1_000);
          last = value;
        }
      }),
      { seed: 11, numRuns: 300 },
    );
  });
});

const report = makeReport({
  groupBy: ['source'],
  measures: { amount: { fn: 'sum', field: 'amount' }, orders: { fn: 'count' } },
  windows: [{ size: 60_000, slide: 20_000 }, { size: 60_000, slide: 60_000 }],
});

describe('WindowStore', () => {
  it('with allowed lateness: early, one on-time emission when event time passes the end, late ones, then the final', () => {
    const lenient = makeReport({ measures: { amount: { fn: 'sum', field: 'amount' } }, windows: [{ size: MIN, slide: MIN }], allowedLateness: '30s' });
    const store = new WindowStore(lenient);
    const watermark = new Watermark(lenient.allowedLateness, Infinity);
    const add = (t: number, amount: string) => {
      watermark.observe(t, 0);
      return store.add(makeEvent({ occurredAt: t, data: { amount } }));
    };
    const step = () => [...store.snapshotOpen(), ...store.advance(watermark.current)].map((r) => `${r.start}:${r.emission}:${r.timing}:${r.final}:${r.measures.amount}`);
    add(1_000, '1');
    expect(step()).toEqual(['0:1:early:false:1']);
    add(MIN + 5_000, '10'); // event time passes the first window's end: its on-time emission, still open
    expect(step()).toEqual(['60000:1:early:false:10', '0:2:on_time:false:1']);
    add(2_000, '2'); // late, but within the lateness
    expect(step()).toEqual(['0:3:late:false:3']);
    add(MIN + 31_000, '100'); // the watermark passes the first window's end: its final emission
    expect(step()).toEqual(['60000:2:early:false:110', '0:4:late:true:3']);
    expect(add(3_000, '4').rejected).toHaveLength(1);
    add(2 * MIN + 40_000, '0');
    expect(step()).toEqual(['120000:1:early:false:0', '60000:3:on_time:true:110']);
  });

  it('emits early results of changed windows, then one on-time result at close, and forgets the window', () => {
    const tumbling = makeReport({ measures: { amount: { fn: 'sum', field: 'amount' } }, windows: [{ size: MIN, slide: MIN }] });
    const store = new WindowStore(tumbling);
    const add = (t: number, amount: string) => store.add(makeEvent({ occurredAt: t, data: { amount } }));
    expect(add(1_000, '1.5')).toEqual({ accepted: 1, rejected: [] });
    add(MIN + 1, '2');
    const early = store.snapshotOpen();
    expect(early.map((r) => [r.start, r.emission, r.timing, r.measures.amount])).toEqual([[0, 1, 'early', '1.5'], [MIN, 1, 'early', '2']]);
    expect(store.snapshotOpen()).toEqual([]); // nothing changed since
    add(2_000, '1');
    expect(store.snapshotOpen().map((r) => [r.start, r.emission, r.measures.amount])).toEqual([[0, 2, '2.5']]);

    expect(store.advance(MIN - 1)).toEqual([]);
    const closed = store.advance(MIN);
    expect(closed.map(({ state, ...result }) => ({ ...result, parts: state.events }))).toEqual([{ report: 'r', size: MIN, slide: MIN, start: 0, end: MIN, group: '', emission: 3, timing: 'on_time', final: true, events: 2, measures: { amount: '2.5' }, parts: 2 }]);
    expect(store.openWindows).toBe(1);

    expect(add(3_000, '100')).toEqual({ accepted: 0, rejected: [{ size: MIN, slide: MIN, start: 0, end: MIN, group: '' }] });
    expect(store.snapshotOpen()).toEqual([]);
    expect(store.advance(MIN / 2)).toEqual([]); // a lower watermark changes nothing
    expect(add(4_000, '100').rejected).toHaveLength(1);
    expect(store.advance(Infinity).map((r) => [r.start, r.emission, r.measures.amount])).toEqual([[MIN, 2, '2']]);
    expect(store.openWindows).toBe(0);
  });

  it('keeps windows of different specs and groups apart even when their bounds coincide', () => {
    const store = new WindowStore(report);
    store.add(makeEvent({ source: 'a', occurredAt: 0, data: { amount: '1' } }));
    store.add(makeEvent({ source: 'b', occurredAt: 0, data: { amount: '2' } }));
    expect(store.openWindows).toBe(8); // per group: three 20 s-sliding windows and one tumbling window
    const closed = store.advance(60_000).filter((r) => r.start === 0);
    expect(closed.map((r) => `${r.size}/${r.slide}/${r.start}/${r.group}=${r.measures.amount}`).sort()).toEqual([
      '60000/20000/0/["a"]=1', '60000/20000/0/["b"]=2', '60000/60000/0/["a"]=1', '60000/60000/0/["b"]=2',
    ]);
    expect(store.openWindows).toBe(0);
  });
});

const arrival = fc.record({
  advance: fc.integer({ min: 0, max: 15_000 }),
  delay: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 30_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 600_000 }) }),
  source: fc.constantFrom('a', 'b'),
  amount: fc.constantFrom('1', '0.5', '-2', '10.25'),
  snapshot: fc.boolean(),
  close: fc.boolean(),
});

describe('window properties (fast-check, seeded)', () => {
  it('closed windows hold exactly the events added before their close, are emitted once, and never change after', () => {
    const exercised = { rejected: 0, early: 0, closedBeforeEnd: 0 };
    fc.assert(
      fc.property(
        fc.array(arrival, { maxLength: 120, size: 'medium' }),
        fc.integer({ min: 0, max: 20_000 }),
        fc.integer({ min: 1, max: 30_000 }),
        (arrivals, lateness, idle) => {
          const store = new WindowStore(report);
          const watermark = new Watermark(lateness, idle);
          const steps: WindowStep[] = [];
          const emissions = new Map<string, WindowResult[]>();
          const record = (results: WindowResult[]) => {
            for (const r of results) {
              const key = windowKey(r);
              const list = emissions.get(key) ?? [];
              expect(list.at(-1)?.timing).not.toBe('on_time'); // nothing after the close
              emissions.set(key, [...list, r]);
            }
          };
          let now = 1_700_000_000_000;
          for (const a of arrivals) {
            now += a.advance;
            const event: TidemarkEvent = makeEvent({ source: a.source, occurredAt: now - a.delay, receivedAt: now, data: { amount: a.amount } });
            watermark.observe(event.occurredAt, now);
            const closedThrough = store.watermark;
            const { accepted, rejected } = store.add(event);
            expect(accepted + rejected.length).toBe(3 + 1);
            for (const w of rejected) expect(w.end).toBeLessThanOrEqual(closedThrough);
            exercised.rejected += rejected.length;
            steps.push({ kind: 'event', event });
            if (a.snapshot) record(store.snapshotOpen());
            if (a.close) {
              const wm = watermark.tick(now);
              steps.push({ kind: 'advance', watermark: wm });
              const closed = store.advance(wm);
              exercised.closedBeforeEnd += closed.length;
              record(closed);
            }
          }
          steps.push({ kind: 'advance', watermark: Infinity });
          record(store.advance(Infinity));
          expect(store.openWindows).toBe(0);

          const expected = oracleWindows(report, steps);
          expect([...emissions.keys()].sort()).toEqual([...expected.keys()].sort());
          for (const [key, list] of emissions) {
            expect(list.map((r) => r.emission)).toEqual(list.map((_, i) => i + 1));
            expect(list.map((r) => r.timing)).toEqual([...list.slice(1).map(() => 'early'), 'on_time']);
            const final = list.at(-1)!;
            expect(final.measures).toEqual(expected.get(key)!.measures);
            expect(final.events).toBe(expected.get(key)!.events.length);
            for (const early of list.slice(0, -1)) expect(early.events).toBeLessThanOrEqual(final.events);
            exercised.early += list.length - 1;
          }
        },
      ),
      { seed: 99, numRuns: 300 },
    );
    // Late events were refused, windows closed mid-stream and early results were seen, or the property proves little.
    expect(Math.min(exercised.rejected, exercised.early, exercised.closedBeforeEnd)).toBeGreaterThan(0);
  });
});
