import type { JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { BUCKETS, openBucket } from '../nats/buckets.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import type { Clock } from '../core/time.ts';
import { retryTransient } from '../nats/retry.ts';
import { isCasConflict } from '../nats/cas.ts';

/**
 * Once-only actions (a heal, a manual-queue entry, an alert), shared by every
 * reconciler through one KV bucket without expiry. A claim is a lease: whoever
 * creates the key does the work and marks it done; a claim left behind by a crash
 * is taken over by compare-and-set once its lease ends. The work itself must be
 * idempotent (it is: every publish carries a deterministic Nats-Msg-Id), since a
 * crash after it but before `done` runs it again.
 */
export const CLAIMS_BUCKET = BUCKETS.reconClaims;

type Claim = { state: 'claimed' | 'done'; owner: string; leaseUntil: number; at: number };

export type Claims = {
  /** Runs `work` unless it is already done; `ran` says whether this call did it. */
  once: (key: string, work: () => Promise<void>) => Promise<{ ran: boolean }>;
  isDone: (key: string) => Promise<boolean>;
};

export async function openClaims(js: JetStreamClient, options: { clock: Clock; owner: string; leaseMs: number; replicas?: number }): Promise<Claims> {
  const kv: KV = await openBucket(js, { name: CLAIMS_BUCKET, replicas: options.replicas ?? 1 });
  const { leaseMs } = options;
  const encode = (claim: Claim) => JSON.stringify(claim);
  const claimed = (): Claim => ({ state: 'claimed', owner: options.owner, leaseUntil: options.clock.now() + leaseMs, at: options.clock.now() });

  const acquire = async (key: string): Promise<number | 'done'> => {
    for (;;) {
      const entry = await retryTransient(() => kv.get(key));
      try {
        if (!entry || entry.operation !== 'PUT') return await retryTransient(() => kv.create(key, encode(claimed())));
        const claim = entry.json<Claim>();
        if (claim.state === 'done') return 'done';
        if (claim.leaseUntil > options.clock.now()) {
          throw new TidemarkError(ErrorCodes.RECON_CLAIM_BUSY, `${key} is being handled by ${claim.owner} until ${new Date(claim.leaseUntil).toISOString()}`);
        }
        return await retryTransient(() => kv.update(key, encode(claimed()), entry.revision));
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
  };

  return {
    once: async (key, work) => {
      const revision = await acquire(key);
      if (revision === 'done') return { ran: false };
      await work();
      await retryTransient(() => kv.update(key, encode({ state: 'done', owner: options.owner, leaseUntil: 0, at: options.clock.now() }), revision));
      return { ran: true };
    },
    isDone: async (key) => {
      const entry = await kv.get(key);
      return entry?.operation === 'PUT' && entry.json<Claim>().state === 'done';
    },
  };
}
