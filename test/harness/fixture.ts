import { afterAll, beforeAll } from 'vitest';

/**
 * A fixture for the whole test file: `start` runs in a beforeAll and the `dispose` of what it
 * built in the matching afterAll, both registered here (vitest runs afterAll hooks in reverse,
 * so a fixture registered later, which may stand on an earlier one, is disposed first). The
 * returned object reads through to what `start` built: tests and later hooks use it as the
 * thing itself; reading it outside of them throws.
 */
export function useFixture<T extends { dispose: () => Promise<void> }>(start: () => Promise<T>, timeoutMs = 60_000): T {
  let built: T | undefined;
  beforeAll(async () => {
    built = await start();
  }, timeoutMs);
  afterAll(async () => {
    const done = built;
    built = undefined;
    await done?.dispose();
  }, timeoutMs);
  return new Proxy({} as T, {
    get: (_target, key) => {
      if (!built) throw new Error(`the fixture is there only inside tests and hooks (read: ${String(key)})`);
      return Reflect.get(built, key);
    },
  });
}

export type Defer = (cleanup: () => Promise<unknown> | void) => void;

/**
 * Builds a fixture step by step, each step registering its own cleanup with `defer` as soon as
 * it holds something: `dispose` runs them in reverse, and so does a failure half-way (before
 * the failure is thrown), so a fixture that did not finish starting leaves no server running.
 */
export async function assemble<T extends object>(build: (defer: Defer) => Promise<T>): Promise<T & { dispose: () => Promise<void> }> {
  const cleanups: Array<() => Promise<unknown> | void> = [];
  const dispose = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  };
  try {
    return Object.assign(await build((cleanup) => cleanups.push(cleanup)), { dispose });
  } catch (err) {
    await dispose().catch(() => undefined);
    throw err;
  }
}
