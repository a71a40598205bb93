import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecentIds } from '../../src/core/recent-ids.ts';

describe('RecentIds', () => {
  it('knows every id added in the last `capacity` additions, and no id never added, whatever the order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 300 }), (capacity, stream) => {
        const recent = new RecentIds(capacity);
        // the oracle: the plain list of every addition, kept outside the structure under test
        const additions: string[] = [];
        for (const n of stream) {
          const id = `e-${n}`;
          recent.add(id, n);
          additions.push(id);
          for (const known of additions.slice(-capacity)) expect(recent.get(known)).toBe(Number(known.slice(2)));
          expect(recent.has(`never-${n}`)).toBe(false);
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
