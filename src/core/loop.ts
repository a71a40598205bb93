import type { Logger } from 'pino';
import { sleep } from './time.ts';

export type Loop = {
  /** settles when the loop has ended (after `stop`) */
  done: Promise<void>;
  /** aborted by `stop`: a step passes it to its own waits */
  signal: AbortSignal;
  /** cuts the current wait short: the next step runs now */
  wake: () => void;
  stop: () => Promise<void>;
};

export type LoopOptions = {
  /** names the loop in the log line of a failed step */
  name: string;
  /** one pass; may return how long to wait before the next (default `everyMs`) */
  step: (signal: AbortSignal) => Promise<number | void>;
  everyMs: number;
  /** failed steps are logged here; without it they are retried silently (an expected miss, like a lost lease race) */
  logger?: Logger;
  /** fields for the log line of a failed step */
  context?: Record<string, unknown>;
  /** wait after a first failure (default `everyMs`), doubled on each further one up to `maxRetryMs` */
  retryMs?: number;
  maxRetryMs?: number;
  /** wait `everyMs` before the first step, for loops whose first pass has nothing to do yet */
  waitFirst?: boolean;
};

/**
 * A background loop every role needs: run a step, wait, repeat until stopped. A step
 * that throws is logged and retried with backoff, so a role's loop never ends on an
 * error; one that throws after `stop` ends quietly (its connection is going away).
 */
export function runLoop(options: LoopOptions): Loop {
  const { step, everyMs, logger } = options;
  const retryMs = options.retryMs ?? everyMs;
  const maxRetryMs = options.maxRetryMs ?? Math.max(retryMs, Math.min(5_000, 4 * retryMs));
  const stopping = new AbortController();
  let waking = new AbortController();
  const pause = async (ms: number) => {
    await sleep(ms, AbortSignal.any([stopping.signal, waking.signal]));
    if (waking.signal.aborted) waking = new AbortController();
  };

  const done = (async () => {
    if (options.waitFirst) await pause(everyMs);
    let failures = 0;
    while (!stopping.signal.aborted) {
      let wait: number;
      try {
        wait = (await step(stopping.signal)) ?? everyMs;
        failures = 0;
      } catch (err) {
        if (stopping.signal.aborted) break;
        wait = Math.min(maxRetryMs, retryMs * 2 ** failures++);
        logger?.warn({ err, ...options.context, retryInMs: wait }, `${options.name} failed; retrying`);
      }
      if (wait > 0) await pause(wait);
    }
  })();

  return {
    done,
    signal: stopping.signal,
    wake: () => waking.abort(),
    stop: async () => {
      stopping.abort();
      await done;
    },
  };
}

/** Resolves when `signal` aborts, without leaving a listener behind on a long-lived signal (MaxListenersExceededWarning). */
export async function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([work, new Promise<undefined>((resolve) => signal.addEventListener('abort', (onAbort = () => resolve(undefined)), { once: true }))]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}
