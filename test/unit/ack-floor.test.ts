import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AckFloor } from '../../src/nats/ack-floor.ts';

/** The oracle: the highest n such that every sequence in (start, n] was handled or removed. */
function oracleFloor(start: number, handled: Set<number>, removed: Set<number>): number {
  let n = start;
  while (handled.has(n + 1) || (removed.has(n + 1) && [...handled].some((s) => s > n + 1))) n++;
  return n;
}

describe('AckFloor', () => {
  it('moves only over sequences handled here, whatever order they complete in', () => {
    fc.assert(
      fc.property(fc.nat(1_000), fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 80 }), (start, offsets) => {
        const floor = new AckFloor<number>(start);
        const handled = new Set<number>();
        let acked = start;
        for (const offset of offsets) {
          const seq = start + offset;
          floor.add(seq, seq);
          handled.add(seq);
          const top = floor.advance();
          if (top !== undefined) {
            // the ack is for the new floor, and only ever moves up
            expect(top).toBe(floor.floor);
            expect(top).toBeGreaterThan(acked);
            acked = top;
          }
          expect(floor.floor).toBe(oracleFloor(start, handled, new Set()));
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('ignores redeliveries at or below the floor', () => {
    const floor = new AckFloor<string>(10);
    floor.add(11, 'a');
    expect(floor.advance()).toBe('a');
    floor.add(11, 'again');
    floor.add(5, 'old');
    expect(floor.advance()).toBeUndefined();
    expect(floor.waiting).toBe(0);
    expect(floor.floor).toBe(11);
  });

  it('steps over sequences removed from the stream once something waits beyond them', () => {
    fc.assert(
      fc.property(fc.nat(100), fc.uniqueArray(fc.integer({ min: 1, max: 40 })), fc.uniqueArray(fc.integer({ min: 1, max: 40 })), (start, handledOffsets, removedOffsets) => {
        const removed = new Set(removedOffsets.map((o) => start + o));
        const handled = new Set(handledOffsets.map((o) => start + o).filter((s) => !removed.has(s)));
        const floor = new AckFloor<number>(start);
        for (const seq of handled) floor.add(seq, seq);
        floor.advance();
        for (let moved = true; moved; ) {
          const before = floor.floor;
          floor.skip((seq) => removed.has(seq));
          floor.advance();
          moved = floor.floor !== before;
        }
        expect(floor.floor).toBe(oracleFloor(start, handled, removed));
      }),
      { numRuns: 2_000 },
    );
  });
});
