/** The processing clock, a port so close and SLA logic can run on virtual time in tests. */
export type Clock = { now: () => number };

export const systemClock: Clock = { now: () => Date.now() };

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

/** Resolves after `ms`, or at once when the signal aborts. */
export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
