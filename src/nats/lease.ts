import type { JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { BUCKETS, openBucket } from './buckets.ts';
import { runLoop } from '../core/loop.ts';
import { isCasConflict } from './cas.ts';

export const LEASE_BUCKET = BUCKETS.leases;

export type Lease = {
  /** resolves once this instance holds the lease (at once if it already does) */
  acquired: () => Promise<void>;
  /** aborted when the lease is lost (another instance took it over); a new one each time it is acquired */
  signal: () => AbortSignal;
  held: () => boolean;
  /** stops renewing and gives the lease up, so a standby takes over at once */
  release: () => Promise<void>;
};

/**
 * One holder at a time for `key`, through compare-and-set on a KV entry. The holder
 * rewrites the entry every `ttlMs / 4`; a standby takes over once the entry has not
 * changed for `ttlMs` by its own clock (so clocks of different hosts never meet: NATS
 * 2.9 has no per-key TTL). A holder whose rewrite finds the entry changed has lost it.
 * The lease decides who does the work, not whether the work is safe: what a holder
 * acks must be safe whoever else runs (see ack-floor.ts).
 */
export async function openLease(js: JetStreamClient, options: { key: string; holder: string; ttlMs: number; replicas?: number }): Promise<Lease> {
  const kv: KV = await openBucket(js, { name: LEASE_BUCKET, replicas: options.replicas ?? 1 });
  const { key, holder, ttlMs } = options;
  const value = () => new TextEncoder().encode(JSON.stringify({ holder, at: new Date().toISOString() }));
  const beat = Math.max(50, Math.floor(ttlMs / 4));
  let revision = 0;
  let controller = new AbortController();
  let holding = false;
  let gained: () => void = () => {};
  let gaining = new Promise<void>((resolve) => (gained = resolve));

  const take = (rev: number) => {
    revision = rev;
    holding = true;
    controller = new AbortController();
    gained();
  };
  const lose = () => {
    holding = false;
    controller.abort();
    gaining = new Promise<void>((resolve) => (gained = resolve));
  };

  // the last revision seen and when (this process's monotonic clock)
  let seen = { revision: -1, at: performance.now() };
  const loop = runLoop({
    name: 'lease',
    everyMs: beat,
    step: async () => {
      try {
        if (holding) {
          try {
            revision = await kv.update(key, value(), revision);
          } catch (err) {
            if (!isCasConflict(err)) throw err;
            // a renewal stored just before a leader election lost its answer is still ours
            const entry = await kv.get(key);
            if (entry?.operation === 'PUT' && entry.json<{ holder: string }>().holder === holder) revision = entry.revision;
            else lose();
          }
        } else {
          const entry = await kv.get(key);
          if (!entry || entry.operation !== 'PUT') {
            take(entry ? await kv.update(key, value(), entry.revision) : await kv.create(key, value()));
          } else if (entry.revision !== seen.revision) {
            seen = { revision: entry.revision, at: performance.now() };
          } else if (performance.now() - seen.at >= ttlMs) {
            take(await kv.update(key, value(), entry.revision));
          }
        }
      } catch {
        // another standby was quicker, or NATS is away for a moment: look again next beat
      }
    },
  });

  return {
    acquired: () => (holding ? Promise.resolve() : gaining),
    signal: () => controller.signal,
    held: () => holding,
    release: async () => {
      await loop.stop();
      if (!holding) return;
      lose();
      await kv.delete(key, { previousSeq: revision }).catch(() => undefined);
    },
  };
}
