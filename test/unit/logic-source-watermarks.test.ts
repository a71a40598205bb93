import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SourceWatermarks } from '../../src/processors/logic/source-watermarks.ts';

const options = { outOfOrdernessMs: 1_000, allowedLatenessMs: 10_000, idleMs: 5_000, maxSources: 100 };
/** Past the start-up hold: every test clock starts here, the first event at T0. */
const T0 = 1_000_000;

describe('SourceWatermarks', () => {
  it('is the lowest mark of the active sources: a source far ahead closes nothing of the others', () => {
    const wm = new SourceWatermarks(options);
    wm.observe('a', 100_000, 100_000, T0);
    wm.observe('b', 40_000, 40_000, T0);
    wm.observe('a', 400_000, 400_000, T0 + 4_000);
    wm.observe('b', 50_000, 50_000, T0 + 4_500);
    // b's mark 50 s minus 1 s out-of-orderness, minus 10 s allowed lateness
    expect(wm.tick(T0 + 6_000)).toBe(39_000);
    expect(wm.observe('b', 49_500, 49_500, T0 + 6_000)).toBe(500); // how far out of order, for the metric
  });

  it('caps a source\'s event times at receivedAt: a clock five minutes fast does not run ahead', () => {
    const wm = new SourceWatermarks({ ...options, allowedLatenessMs: 0 });
    wm.observe('fast', 1_300_000, 1_000_000, T0);
    wm.observe('slow', 999_000, 1_000_000, T0);
    expect(wm.tick(T0 + 5_000 - 1)).toBe(-Infinity); // still in the start-up hold
    wm.observe('fast', 1_305_000, 1_005_000, T0 + 5_000);
    wm.observe('slow', 1_004_000, 1_005_000, T0 + 5_000);
    expect(wm.tick(T0 + 5_000)).toBe(1_003_000);
  });

  it('stops waiting for a source silent for idleMs and forgets it', () => {
    const wm = new SourceWatermarks(options);
    wm.observe('a', 100_000, 100_000, T0);
    wm.observe('b', 20_000, 20_000, T0);
    expect(wm.tick(T0 + 5_000 - 1)).toBe(-Infinity);
    wm.observe('a', 110_000, 110_000, T0 + 5_000);
    expect(wm.tick(T0 + 5_000)).toBe(99_000); // b silent since T0: only a holds it
    expect(wm.sources).toBe(1);
    wm.observe('b', 21_000, 21_000, T0 + 6_000); // back, but the watermark never goes back
    expect(wm.tick(T0 + 6_000)).toBe(99_000);
  });

  it('follows the clock from the highest mark once every source is silent', () => {
    const wm = new SourceWatermarks(options);
    wm.observe('a', 100_000, 100_000, T0);
    wm.observe('b', 90_000, 90_000, T0);
    expect(wm.tick(T0 + 5_000)).toBe(100_000 - 11_000);
    expect(wm.tick(T0 + 8_000)).toBe(100_000 - 11_000 + 3_000);
    expect(wm.sources).toBe(0);
  });

  it('tracks at most maxSources, dropping the longest silent one', () => {
    const wm = new SourceWatermarks({ ...options, maxSources: 2 });
    wm.observe('a', 10_000, 10_000, T0);
    wm.observe('b', 50_000, 50_000, T0 + 1);
    wm.observe('a', 11_000, 11_000, T0 + 2);
    wm.observe('c', 60_000, 60_000, T0 + 3); // b is dropped, not a
    expect(wm.sources).toBe(2);
    wm.observe('a', 12_000, 12_000, T0 + 5_000);
    wm.observe('c', 61_000, 61_000, T0 + 5_000);
    expect(wm.tick(T0 + 5_000)).toBe(12_000 - 11_000);
  });

  it('never decreases, and never passes the mark of a source that is active and progressing', () => {
    const step = fc.record({ source: fc.constantFrom('a', 'b', 'c'), ahead: fc.integer({ min: 0, max: 30_000 }), skew: fc.integer({ min: -1_000, max: 300_000 }), gap: fc.integer({ min: 0, max: 2_000 }) });
    let held = 0;
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
        const wm = new SourceWatermarks(options);
        const received = new Map<string, number>();
        // joinedBehind: the source (new, or back after being silent) started behind the watermark, which never goes back
        const marks = new Map<string, { max: number; progressAt: number; seenAt: number; joinedBehind: boolean }>();
        let now = T0;
        let last = -Infinity;
        for (const { source, ahead, skew, gap } of steps) {
          now += gap;
          const receivedAt = (received.get(source) ?? 0) + ahead;
          received.set(source, receivedAt);
          wm.observe(source, receivedAt + skew, receivedAt, now);
          const capped = Math.min(receivedAt + skew, receivedAt);
          const mark = marks.get(source);
          if (!mark || now - mark.seenAt >= options.idleMs) marks.set(source, { max: capped, progressAt: now, seenAt: now, joinedBehind: capped - 11_000 < last });
          else if (capped > mark.max) Object.assign(mark, { max: capped, progressAt: now, seenAt: now });
          else mark.seenAt = now;
          const closing = wm.tick(now);
          expect(closing).toBeGreaterThanOrEqual(last);
          last = closing;
          for (const m of marks.values()) {
            if (now - m.progressAt >= options.idleMs || m.joinedBehind) continue;
            expect(closing).toBeLessThanOrEqual(m.max - 11_000);
            held++;
          }
        }
      }),
      { seed: 21, numRuns: 300 },
    );
    expect(held).toBeGreaterThan(1_000); // the bound was checked often, not vacuously
  });
});
