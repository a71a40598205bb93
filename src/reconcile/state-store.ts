import type { JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { openBucket, reconStateBucket } from '../nats/buckets.ts';
import type { ReconciliationConfig } from '../core/config.ts';
import { stateKey } from './logic/keys.ts';
import type { PendingEntry, Transition } from './logic/pending.ts';
import { retryTransient } from '../nats/retry.ts';
import { isCasConflict } from '../nats/cas.ts';

/**
 * The streaming match state of one reconciliation: one KV entry per match key, changed
 * only by compare-and-set. The bucket's max_age (NATS 2.9 has no per-key TTL) drops
 * keys untouched for `stream.stateRetention`, long after their window has closed.
 */
export const stateBucket = reconStateBucket;

export type Versioned = { entry: PendingEntry | null; revision: number };

export type StateStore = {
  read: (key: string[]) => Promise<Versioned>;
  /**
   * Applies `step` to the current entry and stores the result, re-reading and
   * re-applying on a concurrent change; returns the entry as stored.
   */
  change: (key: string[], step: (current: PendingEntry | null) => Transition) => Promise<PendingEntry | null>;
  /** Every entry of the bucket (for reports and tests; not on the hot path). */
  entries: () => Promise<PendingEntry[]>;
};

export async function openStateStore(js: JetStreamClient, recon: ReconciliationConfig, replicas = 1): Promise<StateStore> {
  const kv: KV = await openBucket(js, { name: stateBucket(recon.name), replicas, ttl: recon.stream.stateRetention });
  const read = async (key: string[]): Promise<Versioned> => {
    const entry = await retryTransient(() => kv.get(stateKey(key)));
    if (!entry || entry.operation !== 'PUT') return { entry: null, revision: entry?.revision ?? 0 };
    return { entry: entry.json<PendingEntry>(), revision: entry.revision };
  };
  return {
    read,
    change: async (key, step) => {
      for (;;) {
        const { entry, revision } = await read(key);
        const next = step(entry);
        if (!next.changed) return entry;
        try {
          const payload = JSON.stringify(next.entry);
          // revision 0: never written; otherwise compare-and-set against what was read (a tombstone's revision too)
          await retryTransient(() => (revision === 0 ? kv.create(stateKey(key), payload) : kv.update(stateKey(key), payload, revision)));
          return next.entry;
        } catch (err) {
          if (!isCasConflict(err)) throw err;
        }
      }
    },
    entries: async () => {
      const out: PendingEntry[] = [];
      for await (const name of await kv.keys()) {
        const entry = await kv.get(name);
        if (entry?.operation === 'PUT') out.push(entry.json<PendingEntry>());
      }
      return out;
    },
  };
}
