import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/core/canonical.ts';
import { groupLabel } from '../../src/core/group-names.ts';

// The page's own modules are plain browser JavaScript (no types, no build): loaded as they are served.
type PageFormat = { groupLabel: (key: string) => string; sizeLabel: (ms: number) => string; measuresLine: (m: Record<string, string>, names: string[]) => string };
type PageTimeline = { timelineData: (revisions: object[], measure: string, until: number) => Array<Array<number | null>> };
const format = (await import(new URL('../../src/ui/public/format.js', import.meta.url).href)) as PageFormat;
const timeline = (await import(new URL('../../src/ui/public/timeline.js', import.meta.url).href)) as PageTimeline;

describe("the page's helpers", () => {
  it('label a group exactly as the server does (the oracle: groupLabel of src/processors/logic)', () => {
    const value = fc.oneof(fc.string({ maxLength: 6 }), fc.integer(), fc.constant(null), fc.boolean());
    fc.assert(fc.property(fc.array(value, { maxLength: 3 }), (values) => {
      const key = values.length ? canonicalJson(values) : '';
      expect(format.groupLabel(key)).toBe(groupLabel(key));
    }), { numRuns: 300 });
    expect(format.groupLabel('["store-9"]')).toBe('store-9');
  });

  it('turn revisions into a step line held until now, with one marker column per status', () => {
    const revisions = [
      { knownAt: 1_000_000, status: 'preliminary', measures: { amount: '129.9' } },
      { knownAt: 2_000_000, status: 'preliminary', measures: { amount: '150' } },
      { knownAt: 3_000_000, status: 'final', measures: { amount: '150' } },
      { knownAt: 4_000_000, status: 'amended', measures: { amount: '151.5' } },
    ];
    expect(timeline.timelineData(revisions, 'amount', 5_000_000)).toEqual([
      [1000, 2000, 3000, 4000, 5000],
      [129.9, 150, 150, 151.5, 151.5],
      [129.9, 150, null, null, null],
      [null, null, 150, null, null],
      [null, null, null, 151.5, null],
    ]);
    // as of an instant before the last revision was known: no extension backwards
    expect(timeline.timelineData(revisions.slice(0, 1), 'amount', 500_000)[0]).toEqual([1000]);
    expect(format.sizeLabel(3_600_000)).toBe('1h');
    expect(format.sizeLabel(300_000)).toBe('5m');
    expect(format.measuresLine({ amount: '150', orders: '2' }, ['amount', 'orders'])).toBe('amount 150 · orders 2');
  });
});
