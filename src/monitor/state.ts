import type { JetStreamClient } from '@nats-io/jetstream';
import type { KvEntry } from '@nats-io/kv';
import { BUCKETS, openBucket } from '../nats/buckets.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { retryForever, retryTransient } from '../nats/retry.ts';
import { CasConflict, isCasConflict } from '../nats/cas.ts';

/**
 * The monitor's shared state, one small JSON document per (kind, SLA, source) in one
 * KV bucket, so any number of instances agree on it:
 * - `d.<sla>.<source>` late-event aggregates per bucket (DelayedState)
 * - `e.<sla>.<source>` / `y.<sla>.<source>` every / dailyBy schedules
 * - `r.<sla>.<report>.<status>` report deadlines
 * - `c.<sla>`: the days a CardinalityCapped alert was raised for
 * - `epoch`: when the first monitor started; expectations begin there.
 * Every change is a compare-and-set on the key's revision. Each document carries an
 * outbox: a transition that raises alerts writes them there in the same CAS, so an
 * alert is decided exactly once even when instances race, and is published after.
 */
export const MONITOR_BUCKET = BUCKETS.monitor;

const MAX_CAS_ATTEMPTS = 50;
/** A watch that falls this far behind fails the tick (retried) instead of hanging it. */
const SYNC_TIMEOUT_MS = 10_000;
const enc = new TextEncoder();

const sourceToken = (source: string): string => Buffer.from(source).toString('base64url') || '_';
export const tokenSource = (token: string): string => Buffer.from(token, 'base64url').toString();

export const stateKey = (kind: 'd' | 'e' | 'y', sla: string, source: string): string => `${kind}.${sla}.${sourceToken(source)}`;
export const deadlineKey = (sla: string, report: string, status: string): string => `r.${sla}.${report}.${status}`;

type StateEntry = { value: unknown; revision: number };

export type MonitorState = {
  /** the latest value of every key, as this instance last saw it (kept current by a watch) */
  entries: ReadonlyMap<string, StateEntry>;
  /** resolves once `entries` holds every change committed before the call */
  sync: () => Promise<void>;
  /**
   * Compare-and-set loop: reads the key, applies `change`, writes; retries on a race.
   * `change` returns null for "nothing to do"; `init` supplies the value of a missing key (null: leave it missing).
   * Resolves to the value written, or null when nothing was.
   */
  mutate: <T>(key: string, init: () => T | null, change: (value: T) => T | null) => Promise<T | null>;
  /** deletes `key` if it is still at `revision` (nothing wrote it since); false when it was written meanwhile */
  forget: (key: string, revision: number) => Promise<boolean>;
  /** the first monitor's start time, set once */
  epoch: (now: number) => Promise<number>;
  stop: () => Promise<void>;
};

export async function openMonitorState(js: JetStreamClient, replicas = 1): Promise<MonitorState> {
  const kv = await openBucket(js, { name: MONITOR_BUCKET, replicas });
  const entries = new Map<string, StateEntry>();
  let seenRevision = 0;
  let waiters: Array<{ revision: number; resolve: () => void }> = [];
  let stopped = false;
  const apply = (entry: KvEntry) => {
    if (entry.operation === 'PUT') entries.set(entry.key, { value: entry.json(), revision: entry.revision });
    else entries.delete(entry.key);
    seenRevision = Math.max(seenRevision, entry.revision);
    waiters = waiters.filter((w) => (w.revision <= seenRevision ? (w.resolve(), false) : true));
  };

  // A watch that ends or fails, or one that went quiet (on 2.9.10 its consumer can be
  // placed on a server that is down: sync() then stops it), is replaced by a new one,
  // which replays every key's latest entry, delete markers included.
  let watch = await kv.watch({ key: '>' });
  const watching = (async () => {
    while (!stopped) {
      try {
        for await (const entry of watch) apply(entry);
      } catch {
        // started again below
      }
      if (stopped) return;
      watch = await retryForever(() => kv.watch({ key: '>' }), () => stopped);
    }
  })().catch(() => undefined); // retryForever gives up only once stopped

  const read = async <T>(key: string): Promise<{ value: T; revision: number } | null> => {
    const entry = await retryTransient(() => kv.get(key));
    return entry && entry.operation === 'PUT' ? { value: entry.json<T>(), revision: entry.revision } : null;
  };

  const mutate = async <T>(key: string, init: () => T | null, change: (value: T) => T | null): Promise<T | null> => {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const current = await read<T>(key);
      try {
        if (current) {
          const next = change(current.value);
          if (next === null) return null;
          await retryTransient(() => kv.update(key, enc.encode(JSON.stringify(next)), current.revision));
          return next;
        }
        const start = init();
        if (start === null) return null;
        // a missing key is created even when nothing changed, so every instance shares its starting point
        const next = change(start) ?? start;
        await retryTransient(() => kv.create(key, enc.encode(JSON.stringify(next))));
        return next;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
    throw new CasConflict(`monitor state ${key}: still changing after ${MAX_CAS_ATTEMPTS} compare-and-set attempts`);
  };

  return {
    entries,
    // a write of our own is ordered after every change committed before it, so seeing it means seeing them
    sync: async () => {
      const revision = await retryTransient(() => kv.put('sync', enc.encode('1')));
      if (revision <= seenRevision) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => waiters.push({ revision, resolve })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            watch.stop();
            reject(new TidemarkError(ErrorCodes.MONITOR_STATE_STALE, `monitor state watch is behind revision ${revision} after ${SYNC_TIMEOUT_MS} ms; watching anew`));
          }, SYNC_TIMEOUT_MS);
        }),
      ]).finally(() => clearTimeout(timer));
    },
    mutate,
    forget: async (key, revision) => {
      try {
        await kv.delete(key, { previousSeq: revision });
        return true;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        return false;
      }
    },
    epoch: async (now) => {
      try {
        await kv.create('epoch', enc.encode(JSON.stringify(now)));
        return now;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        return (await read<number>('epoch'))!.value;
      }
    },
    stop: async () => {
      stopped = true;
      watch.stop();
      await watching;
      for (const w of waiters) w.resolve();
    },
  };
}
