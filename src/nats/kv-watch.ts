import type { KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/transport-node';
import { retryForever } from './retry.ts';

/** How long a write of our own may take to come back through the watch before the watch is deemed stuck (the default). */
export const WATCH_LAG_MS = 5_000;

export type FollowedWatch = {
  /** a write of ours stored at `revision`: unless the watch shows it within the lag allowed, the watch is made anew */
  wrote: (revision: number) => void;
  /** how many times the watch was made anew (after an end, an error or a write that never came back) */
  restarts: () => number;
  stop: () => void;
};

/**
 * Follows a KV watch for as long as the caller wants it. A watch is an ordered consumer
 * the client makes anew after a leader change; on 2.9.10 that can fail, end, or hang
 * while a server is down (an ephemeral consumer placed on the dead peer never
 * answers), and the watch then goes quiet without an error. The caller's own writes
 * are the probe: one not seen in time stops the watch, and a new one replays every
 * key's latest entry (delete markers too), so `onEntry` must take an entry it has
 * already seen.
 */
export async function followWatch(open: () => Promise<QueuedIterator<KvWatchEntry>>, onEntry: (entry: KvWatchEntry) => void, lagMs = WATCH_LAG_MS): Promise<FollowedWatch> {
  let stopped = false;
  let seen = 0;
  let restarts = 0;
  let watch = await open();
  void (async () => {
    while (!stopped) {
      try {
        for await (const entry of watch) {
          seen = Math.max(seen, entry.revision);
          onEntry(entry);
        }
      } catch {
        // the watch failed: start another
      }
      if (stopped) return;
      watch = await retryForever(open, () => stopped);
      restarts++;
    }
  })().catch(() => undefined); // retryForever gives up only once stopped
  // one probe at a time: a busy writer arms one timer per WATCH_LAG_MS, not one per write
  let probe: NodeJS.Timeout | undefined;
  let latest = 0;
  const arm = (revision: number) => {
    const watching = watch;
    probe = setTimeout(() => {
      probe = undefined;
      if (stopped) return;
      if (watching === watch && seen < revision) watch.stop();
      if (latest > revision) arm(latest);
    }, lagMs).unref();
  };
  return {
    wrote: (revision) => {
      latest = Math.max(latest, revision);
      if (probe === undefined) arm(revision);
    },
    restarts: () => restarts,
    stop: () => {
      stopped = true;
      clearTimeout(probe);
      watch.stop();
    },
  };
}
