import type { Monitor } from '../../src/monitor/monitor.ts';

/**
 * The positive signal before a "no further alert" check: each monitor runs its
 * clock-driven checks here, awaited, `passes` times after the caller's last change (a
 * pass that loses a state race with the monitor's own loop is run again). Whatever
 * those checks would raise has then been published.
 */
export async function checksRan(monitors: readonly Monitor[], passes = 2): Promise<void> {
  for (const monitor of monitors) {
    let failures = 0;
    for (let done = 0; done < passes;) {
      try {
        await monitor.tick();
        done++;
      } catch (err) {
        if (++failures > 20) throw err;
      }
    }
  }
}
