import { AckPolicy, DeliverPolicy, JetStreamApiError, RetentionPolicy, StorageType, type ConsumerConfig, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { bucketReplicas, openBucket } from '../nats/buckets.ts';
import { retryTransient } from '../nats/retry.ts';
import { nanos } from '@nats-io/transport-node';
import type { Config } from '../core/config.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import type { BatchPublisher } from '../nats/batch-publisher.ts';
import { waitForRaised, type TopologyChange } from '../nats/topology.ts';
import { sagaStore, type SagaStore } from './store.ts';
import { SAGA_BUCKET, SAGA_CONSUMERS, SAGA_LOG_STREAM, SAGA_STREAM, SAGA_SUBJECTS } from './subjects.ts';

const API_STREAM_NOT_FOUND = 10059;
const API_CONSUMER_NOT_FOUND = 10014;
const isApiError = (err: unknown, code: number): boolean => err instanceof JetStreamApiError && err.apiError().err_code === code;

async function ensureSagaStream(jsm: JetStreamManager, config: Config): Promise<TopologyChange> {
  const limits = config.sagas.stream;
  const mutable = {
    max_age: nanos(limits.maxAge),
    max_bytes: limits.maxBytes,
    duplicate_window: nanos(Math.min(limits.duplicateWindow, limits.maxAge || limits.duplicateWindow)),
    num_replicas: limits.replicas ?? config.nats.replicas,
  };
  const current = await retryTransient(() => jsm.streams.info(SAGA_STREAM)).then(
    (info) => info.config,
    (err: unknown) => {
      if (isApiError(err, API_STREAM_NOT_FOUND)) return undefined;
      throw err;
    },
  );
  if (!current) {
    await jsm.streams.add({ name: SAGA_STREAM, subjects: SAGA_SUBJECTS, retention: RetentionPolicy.Limits, storage: StorageType.File, ...mutable });
    return { kind: 'stream', name: SAGA_STREAM, action: 'created' };
  }
  if (current.subjects.join(',') !== SAGA_SUBJECTS.join(',') || current.retention !== RetentionPolicy.Limits) {
    throw new TidemarkError(ErrorCodes.STREAM_CONFLICT, `existing stream ${SAGA_STREAM} is not a limits stream on ${SAGA_SUBJECTS.join(', ')}; remove or rename it`);
  }
  const changed = (Object.keys(mutable) as Array<keyof typeof mutable>).filter((k) => current[k] !== mutable[k]);
  if (!changed.length) return { kind: 'stream', name: SAGA_STREAM, action: 'unchanged' };
  await jsm.streams.update(SAGA_STREAM, { ...current, ...mutable });
  if (mutable.num_replicas > current.num_replicas) await waitForRaised(jsm, SAGA_STREAM);
  const detail = changed.map((k) => `${k === 'num_replicas' ? 'replicas' : k} ${String(current[k])} → ${String(mutable[k])}`).join(', ');
  return { kind: 'stream', name: SAGA_STREAM, action: 'updated', detail };
}

async function ensureConsumer(jsm: JetStreamManager, spec: { stream: string; durable: string; filter: string }, config: Config): Promise<TopologyChange> {
  const name = `${spec.stream}/${spec.durable}`;
  const want: Partial<ConsumerConfig> & { durable_name: string } = {
    durable_name: spec.durable,
    filter_subject: spec.filter,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(config.sagas.ackWait),
    max_ack_pending: config.nats.maxAckPending,
    max_deliver: -1,
  };
  const current = await retryTransient(() => jsm.consumers.info(spec.stream, spec.durable)).then(
    (info) => info.config,
    (err: unknown) => {
      if (isApiError(err, API_CONSUMER_NOT_FOUND)) return undefined;
      throw err;
    },
  );
  if (!current) {
    await jsm.consumers.add(spec.stream, want);
    return { kind: 'consumer', name, action: 'created' };
  }
  if (current.filter_subject !== spec.filter || current.ack_policy !== AckPolicy.Explicit || current.deliver_subject) {
    throw new TidemarkError(ErrorCodes.STREAM_CONFLICT, `existing consumer ${name} is not an explicit-ack pull consumer on ${spec.filter}; delete it and start again`);
  }
  const changed = (['ack_wait', 'max_ack_pending'] as const).filter((k) => current[k] !== want[k]);
  if (!changed.length) return { kind: 'consumer', name, action: 'unchanged' };
  await jsm.consumers.update(spec.stream, spec.durable, Object.fromEntries(changed.map((k) => [k, want[k]])));
  return { kind: 'consumer', name, action: 'updated' };
}

/** The saga log: one key per saga, its whole history in the value, replaced only by compare-and-set. */
export const openSagaBucket = (js: JetStreamClient, replicas = 1): Promise<KV> => openBucket(js, { name: SAGA_BUCKET, replicas });

/** The saga log, written through `publisher`; `watchLagMs`: see SAGA_WATCH_LAG_MS. */
export const openSagaStore = async (js: JetStreamClient, publisher: BatchPublisher, replicas = 1, watchLagMs?: number): Promise<SagaStore> => sagaStore(await openSagaBucket(js, replicas), publisher, SAGA_BUCKET, watchLagMs);

/** Durables of earlier versions (one input consumer for everything; a dispatcher), which would only hold messages now. */
const RETIRED = [
  { stream: SAGA_STREAM, durable: 'saga-orchestrator' },
  { stream: SAGA_LOG_STREAM, durable: 'saga-dispatcher' },
];

/**
 * Creates or updates SAGAS, the saga log bucket and the durables; idempotent, so
 * every orchestrator calls it at start.
 */
export async function ensureSagaTopology(js: JetStreamClient, jsm: JetStreamManager, config: Config): Promise<TopologyChange[]> {
  const changes = [await ensureSagaStream(jsm, config)];
  await openSagaBucket(js, bucketReplicas(config, 'sagas'));
  for (const spec of Object.values(SAGA_CONSUMERS)) changes.push(await ensureConsumer(jsm, spec, config));
  for (const { stream, durable } of RETIRED) {
    const deleted = await jsm.consumers.delete(stream, durable).catch((err: unknown) => {
      if (isApiError(err, API_CONSUMER_NOT_FOUND)) return false;
      throw err;
    });
    if (deleted) changes.push({ kind: 'consumer', name: `${stream}/${durable}`, action: 'deleted' });
  }
  return changes;
}
