import type { JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { Config, ReconciliationConfig } from '../core/config.ts';

/** Every KV bucket of a fixed name, keyed as in `nats.buckets` of the config. */
export const BUCKETS = {
  daily: 'tidemark_daily',
  leases: 'tidemark_leases',
  sagas: 'tidemark_sagas',
  monitor: 'tidemark_monitor',
  alertGuard: 'tidemark_alert_guard',
  reconClaims: 'tidemark_recon_claims',
  realtimeFence: 'tidemark_realtime_fence',
} as const;

export type BucketKey = keyof typeof BUCKETS;

/** The streaming match state of one reconciliation. */
export const reconStateBucket = (name: string): string => `tidemark_recon_${name}`;

/**
 * How a bucket is made. `ttl` is the bucket's max_age: NATS 2.9 keeps a per-key TTL
 * for ever, so a bucket that forgets does so as a whole.
 */
export type BucketSpec = { name: string; replicas: number; ttl?: number };

export const bucketReplicas = (config: Config, key: BucketKey | 'reconState'): number => config.nats.buckets[key].replicas ?? config.nats.replicas;

export function bucketSpec(config: Config, key: BucketKey): BucketSpec {
  const spec = { name: BUCKETS[key], replicas: bucketReplicas(config, key) };
  return key === 'alertGuard' ? { ...spec, ttl: config.monitor.alertMemory } : spec;
}

export const reconStateSpec = (config: Config, recon: ReconciliationConfig): BucketSpec => ({
  name: reconStateBucket(recon.name),
  replicas: bucketReplicas(config, 'reconState'),
  ttl: recon.stream.stateRetention,
});

/** Every bucket the configured roles use: the fixed ones and one per streaming reconciliation. */
export function bucketSpecs(config: Config): BucketSpec[] {
  const streaming = config.reconciliations.filter((r) => r.a.subject !== undefined);
  return [...(Object.keys(BUCKETS) as BucketKey[]).map((key) => bucketSpec(config, key)), ...streaming.map((r) => reconStateSpec(config, r))];
}

/**
 * Opens a bucket, creating it as `spec` says when it is missing. An existing bucket is
 * taken as it is: `tidemark init` (ensureTopology) is what changes one in place.
 */
export const openBucket = (js: JetStreamClient, spec: BucketSpec): Promise<KV> =>
  new Kvm(js).create(spec.name, { history: 1, replicas: spec.replicas, ...(spec.ttl ? { ttl: spec.ttl } : {}) });

