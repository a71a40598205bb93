import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecentIds } from '../src/core/recent-ids.ts';

describe('RecentIds', () => {
  it('knows every id among the last `capacity` added, whatever the order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 300 }), (capacity, stream) => {
        const recent = new RecentIds(capacity);
        const added: string[] = [];
        for (const n of stream) {
          const id = `e-${n}`;
          // the oracle: an id inside the last `capacity` first additions is always known
          if (added.slice(-capacity).includes(id)) expect(recent.has(id)).toBe(true);
          if (!recent.has(id)) added.push(id);
          recent.add(id);
        }
      }),
    );
  });

  it('forgets ids beyond two generations, so memory stays bounded', () => {
    const recent = new RecentIds(2);
    for (const id of ['a', 'b', 'c', 'd', 'e']) recent.add(id);
    expect(['a', 'b', 'c', 'd', 'e'].map((id) => recent.has(id))).toEqual([false, false, true, true, true]);
  });

  it('keeps the fingerprint an id was added with while the id is known', () => {
    const recent = new RecentIds(2);
    recent.add('a', 1);
    recent.add('b', 2);
    recent.add('c', 3);
    expect(['a', 'b', 'c', 'd'].map((id) => recent.get(id))).toEqual([1, 2, 3, undefined]);
  });
});
