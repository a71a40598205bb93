/**
 * At most `size` tasks at a time, the rest waiting in arrival order. `slot()` is the
 * back-pressure side: a consumer takes a slot before pulling its next message, so it
 * holds no more than it can run. (p-limit covers `run` but has no way to wait for a
 * free slot before taking the work, which the pump needs.)
 */
export type Limiter = {
  run: <T>(task: () => Promise<T>) => Promise<T>;
  /** resolves with a release once a place is free */
  slot: () => Promise<() => void>;
  /** tasks running now */
  active: () => number;
  /** resolves once nothing runs and nothing waits */
  idle: () => Promise<void>;
};

export function limiter(size: number): Limiter {
  let free = Math.max(1, size);
  let active = 0;
  const waiting: Array<() => void> = [];
  const idlers: Array<() => void> = [];

  const release = () => {
    active--;
    const next = waiting.shift();
    if (next) next();
    else free++;
    if (active === 0 && waiting.length === 0) for (const resolve of idlers.splice(0)) resolve();
  };
  const slot = async (): Promise<() => void> => {
    if (free > 0) free--;
    else await new Promise<void>((wake) => waiting.push(wake));
    active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  };

  return {
    slot,
    run: async (task) => {
      const done = await slot();
      try {
        return await task();
      } finally {
        done();
      }
    },
    active: () => active,
    idle: () => (active === 0 && waiting.length === 0 ? Promise.resolve() : new Promise<void>((resolve) => idlers.push(resolve))),
  };
}
