import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { limiter } from '../../src/core/limiter.ts';

describe('limiter', () => {
  it('never runs more than its size at once, starts tasks in arrival order and runs every one', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 30 }), async (size, delays) => {
        const limit = limiter(size);
        let running = 0;
        let most = 0;
        const started: number[] = [];
        const results = await Promise.all(
          delays.map((delay, i) =>
            limit.run(async () => {
              started.push(i);
              most = Math.max(most, ++running);
              expect(limit.active()).toBeLessThanOrEqual(size);
              await new Promise((r) => setTimeout(r, delay));
              running--;
              return i;
            }),
          ),
        );
        expect(results).toEqual(delays.map((_, i) => i));
        expect(started).toEqual(delays.map((_, i) => i));
        expect(most).toBeLessThanOrEqual(size);
        if (delays.length >= size) expect(most).toBe(size);
        await limit.idle();
      }),
      { numRuns: 40 },
    );
  });

  it('hands out a slot only once one is released, and frees a place on a failed task', async () => {
    const limit = limiter(2);
    const first = await limit.slot();
    await expect(limit.run(async () => Promise.reject(new Error('failed')))).rejects.toThrow('failed');
    const second = await limit.slot();
    let third = false;
    const waiting = limit.slot().then((release) => {
      third = true;
      return release;
    });
    await new Promise((r) => setImmediate(r));
    expect(third).toBe(false);
    first();
    first(); // a second release of the same slot frees nothing more
    const release = await waiting;
    expect(limit.active()).toBe(2);
    let idle = false;
    const idled = limit.idle().then(() => (idle = true));
    second();
    await new Promise((r) => setImmediate(r));
    expect(idle).toBe(false);
    release();
    await idled;
    expect(limit.active()).toBe(0);
  });
});
