import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecentIds } from '../src/core/recent-ids.ts';

describe('RecentIds', () => {
  it('admits an id once while it is among the last `capacity` distinct ids, whatever the order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 300 }), (capacity, stream) => {
        const recent = new RecentIds(capacity);
        const window: string[] = [];
        for (const n of stream) {
          const id = `e-${n}`;
          const admitted = recent.admit(id);
          // the oracle: an id inside the last `capacity` first-admissions is always recognised
          if (window.slice(-capacity).includes(id)) expect(admitted).toBe(false);
          if (admitted) window.push(id);
        }
      }),
    );
  });

  it('forgets ids beyond two generations, so memory stays bounded', () => {
    const recent = new RecentIds(2);
    for (const id of ['a', 'b', 'c', 'd', 'e']) expect(recent.admit(id)).toBe(true);
    expect(recent.admit('a')).toBe(true);
    expect(recent.admit('e')).toBe(false);
  });
});
