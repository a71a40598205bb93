import type { Clock } from '../../src/core/time.ts';

/**
 * A clock that runs with real time but can be moved forward: tests jump past a day's
 * close while coalescing intervals and timeouts still elapse normally.
 */
export function shiftedClock(offsetMs = 0): Clock & { shift: (ms: number) => void; jumpTo: (ms: number) => void } {
  let offset = offsetMs;
  return {
    now: () => Date.now() + offset,
    shift: (ms) => {
      offset += ms;
    },
    jumpTo: (ms) => {
      offset = ms - Date.now();
    },
  };
}
