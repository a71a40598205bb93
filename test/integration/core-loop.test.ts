import { describe, expect, it } from 'vitest';
import { runLoop } from '../../src/core/loop.ts';
import { capturingLogger } from '../harness/log.ts';
import { waitFor } from '../harness/streams.ts';

describe('runLoop', () => {
  it('runs the step again and again, and stop waits for the step under way', async () => {
    let runs = 0;
    let inStep = false;
    const loop = runLoop({
      name: 'test',
      everyMs: 1,
      step: async () => {
        inStep = true;
        await new Promise((r) => setTimeout(r, 5));
        runs++;
        inStep = false;
      },
    });
    await waitFor(async () => runs >= 3, 60_000, 'three steps');
    await loop.stop();
    expect(inStep).toBe(false);
    const after = runs;
    // the marker: a second loop on the same 1 ms schedule steps ten times (its steps are quicker); a stopped loop that still ran would have stepped meanwhile
    let marker = 0;
    const witness = runLoop({ name: 'witness', everyMs: 1, step: async () => void marker++ });
    await waitFor(async () => marker >= 10, 60_000, 'ten steps of the witness loop');
    await witness.stop();
    expect(runs).toBe(after);
  });

  it('logs a failed step and retries it with doubling backoff up to the cap, then resets after a success', async () => {
    const { logger, lines } = capturingLogger();
    let calls = 0;
    const loop = runLoop({
      name: 'flaky',
      everyMs: 1,
      retryMs: 2,
      maxRetryMs: 8,
      logger,
      context: { feed: 'f' },
      step: async () => {
        calls++;
        if (calls <= 5 || calls === 7) throw new Error(`boom ${calls}`);
      },
    });
    await waitFor(async () => calls >= 8, 60_000, 'eight calls');
    await loop.stop();
    const failed = lines.filter((l) => l.msg === 'flaky failed; retrying');
    expect(failed.slice(0, 6).map((l) => l.retryInMs)).toEqual([2, 4, 8, 8, 8, 2]);
    expect(failed[0]).toMatchObject({ feed: 'f', level: 40 });
  });

  it('waits what the step returns, and wake() cuts a long wait short', async () => {
    let runs = 0;
    const loop = runLoop({ name: 'test', everyMs: 60_000, step: async () => void runs++ });
    await waitFor(async () => runs === 1, 60_000, 'the first step');
    loop.wake();
    await waitFor(async () => runs === 2, 60_000, 'the step woken early');
    await loop.stop();

    let quick = 0;
    const fast = runLoop({ name: 'test', everyMs: 60_000, step: async () => (++quick < 5 ? 0 : 60_000) });
    await waitFor(async () => quick === 5, 60_000, 'steps returning 0 to run at once');
    await fast.stop();
  });

  it('ends quietly when a step fails because it was stopped', async () => {
    const { logger, lines } = capturingLogger();
    const loop = runLoop({
      name: 'stopping',
      everyMs: 60_000,
      logger,
      step: async (signal) => {
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        throw new Error('connection closed');
      },
    });
    await loop.stop();
    expect(lines.filter((l) => l.msg === 'stopping failed; retrying')).toEqual([]);
  });
});
