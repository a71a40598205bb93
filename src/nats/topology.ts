import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { webhookDurable, type Config, type StreamLimitsConfig } from '../core/config.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { sleep } from '../core/time.ts';
import { bucketSpecs, openBucket, type BucketSpec } from './buckets.ts';
import { retryTransient } from './retry.ts';

export const STREAMS = {
  ingest: { name: 'INGEST', subjects: ['ingest.>'] },
  events: { name: 'EVENTS', subjects: ['events.>'] },
  dlq: { name: 'DLQ', subjects: ['dlq.>'] },
  alerts: { name: 'ALERTS', subjects: ['alerts.>'] },
} as const;

/** Durable pull consumers: every instance of a role shares its role's durable. */
export const CONSUMERS = {
  gateway: { stream: STREAMS.ingest.name, durable: 'gateway' },
  processor: { stream: STREAMS.events.name, durable: 'processor' },
  monitor: { stream: STREAMS.events.name, durable: 'monitor' },
  // writes every alert (the monitor's and the processor's amended ones) to ClickHouse and webhooks
  alertSink: { stream: STREAMS.alerts.name, durable: 'alert-sink' },
} as const;

const API_STREAM_NOT_FOUND = 10059;
const API_CONSUMER_NOT_FOUND = 10014;

type StreamKey = keyof typeof STREAMS;
/** Reconciliation's stream (reconcile/feeds.ts), made by the reconciler when one is configured. */
const RECON_STREAM_NAME = 'RECON';
/** `detail` says what an update changed, e.g. "replicas 1 → 3". */
export type TopologyChange = { kind: 'stream' | 'consumer' | 'bucket'; name: string; action: 'created' | 'updated' | 'unchanged' | 'deleted'; detail?: string };

function desiredStream(key: StreamKey, limits: StreamLimitsConfig, replicas: number): Partial<StreamConfig> & { name: string } {
  const { name, subjects } = STREAMS[key];
  return {
    name,
    subjects: [...subjects],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(limits.maxAge),
    max_bytes: limits.maxBytes,
    // the dedup window may not exceed max_age
    duplicate_window: nanos(Math.min(limits.duplicateWindow, limits.maxAge || limits.duplicateWindow)),
    num_replicas: limits.replicas ?? replicas,
  };
}

/** Events a consumer of EVENTS may hold unacked, all its instances together: seconds of work at full speed. */
const EVENTS_IN_FLIGHT = 200_000;

/**
 * The unacked messages a consumer may hold. A client's consume() pulls more as messages
 * arrive, not as they are handled, so this is what bounds a role's memory and how long
 * a message waits before its ack, which must stay well inside ack_wait: on EVENTS a
 * message may be a pack of up to `ingest.eventsPerMessage` events, and 20,000 packs had
 * a processor hold 4M events, wait past ack_wait and get them all again.
 */
export function maxAckPending(stream: string, config: Config): number {
  if (stream !== STREAMS.events.name) return config.nats.maxAckPending;
  return Math.min(config.nats.maxAckPending, Math.max(1_000, Math.ceil(EVENTS_IN_FLIGHT / config.ingest.eventsPerMessage)));
}

/**
 * The gateway acks INGEST cumulatively (AckAll: one ack a batch instead of one a raw
 * message, measured here: 7.5 → 2.6 µs of nats-server and 8.4 → 2.6 µs of client CPU a
 * message) and so is read by one gateway at a time (see ingest/nats-gateway.ts).
 */
const ackPolicyOf = (stream: string, durable: string): AckPolicy =>
  stream === CONSUMERS.gateway.stream && durable === CONSUMERS.gateway.durable ? AckPolicy.All : AckPolicy.Explicit;

function desiredConsumer(stream: string, durable: string, config: Config, deliverPolicy: DeliverPolicy = DeliverPolicy.All): Partial<ConsumerConfig> & { durable_name: string } {
  return {
    durable_name: durable,
    ack_policy: ackPolicyOf(stream, durable),
    deliver_policy: deliverPolicy,
    ack_wait: nanos(config.nats.ackWait),
    max_ack_pending: maxAckPending(stream, config),
    max_deliver: -1,
  };
}

const isApiError = (err: unknown, code: number): boolean => err instanceof JetStreamApiError && err.apiError().err_code === code;

/** Fields that can be changed on a live stream; anything else differing is a conflict. */
const describeChanges = (current: StreamConfig, want: Partial<StreamConfig>, fields: readonly (keyof StreamConfig)[]): string =>
  fields.map((f) => `${f === 'num_replicas' ? 'replicas' : f} ${String(current[f])} → ${String(want[f])}`).join(', ');

/** How long a raise may take to settle: seconds on three loopback servers at load 11 (see waitForRaised). */
const RAISE_BUDGET_MS = 120_000;
/** How long a raised stream must stay settled: over ten times the 84 ms a replica's store was seen behind after one check. */
const SETTLED_FOR_MS = 1_000;

/** Whether the stream has a leader, every replica is current, and its last message reads back as the leader has it. */
async function settled(jsm: JetStreamManager, stream: string): Promise<boolean> {
  const { cluster, config, state } = await jsm.streams.info(stream);
  const replicas = cluster?.replicas ?? [];
  if (!cluster?.leader || replicas.length !== config.num_replicas - 1 || !replicas.every((r) => r.current && !r.offline)) return false;
  if (!config.allow_direct || state.messages === 0) return true;
  const [direct, leader] = await Promise.all([jsm.direct.getMessage(stream, { seq: state.last_seq }), jsm.streams.getMessage(stream, { seq: state.last_seq })]);
  return (direct === null) === (leader === null);
}

/**
 * Waits until a stream whose replicas were just raised has stayed settled (see `settled`)
 * for SETTLED_FOR_MS. Measured on 2.9.10, R1 → R3 on three loopback servers: the stream
 * has no leader for up to 8 s (its leader gets time out), a catching-up replica answers
 * direct gets, as KV gets are, with "not found" for up to 0.9 s at load 11, and stream
 * info calls a replica current up to 1.4 s before it holds every message; the direct get
 * here reaches one replica only. A role started on a freshly raised bucket could read an
 * entry as missing, so init returns after this.
 */
export async function waitForRaised(jsm: JetStreamManager, stream: string): Promise<void> {
  const deadline = Date.now() + RAISE_BUDGET_MS;
  let since: number | undefined;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      since = (await settled(jsm, stream)) ? (since ?? Date.now()) : undefined;
      if (since !== undefined && Date.now() - since >= SETTLED_FOR_MS) return;
    } catch (err) {
      since = undefined;
      last = err;
    }
    await sleep(100);
  }
  throw new TidemarkError(ErrorCodes.REPLICAS_BEHIND, `${stream}: its new replicas did not catch up within ${RAISE_BUDGET_MS / 1000} s (a leader, every replica current, its last message readable)${last ? `: ${String(last)}` : ''}`, { cause: last });
}

/**
 * Sets the replicas of an existing stream in place (2.9.10 moves the data to new peers
 * itself) and waits for the new ones to catch up; undefined when the stream does not exist.
 */
async function ensureReplicas(jsm: JetStreamManager, stream: string, replicas: number, kind: TopologyChange['kind']): Promise<TopologyChange | undefined> {
  let current: StreamConfig;
  try {
    current = (await retryTransient(() => jsm.streams.info(stream))).config;
  } catch (err) {
    if (isApiError(err, API_STREAM_NOT_FOUND)) return undefined;
    throw err;
  }
  const name = kind === 'bucket' ? stream.replace(/^KV_/, '') : stream;
  if (current.num_replicas === replicas) return { kind, name, action: 'unchanged' };
  await jsm.streams.update(stream, { ...current, num_replicas: replicas });
  if (replicas > current.num_replicas) await waitForRaised(jsm, stream);
  return { kind, name, action: 'updated', detail: `replicas ${current.num_replicas} → ${replicas}` };
}

/** Creates a KV bucket as the role that uses it would, or sets the replicas of an existing one. */
async function ensureBucket(jsm: JetStreamManager, spec: BucketSpec): Promise<TopologyChange> {
  const existing = await ensureReplicas(jsm, `KV_${spec.name}`, spec.replicas, 'bucket');
  if (existing) return existing;
  await openBucket(jsm.jetstream(), spec);
  return { kind: 'bucket', name: spec.name, action: 'created' };
}

const MUTABLE_STREAM_FIELDS = ['max_age', 'max_bytes', 'duplicate_window', 'num_replicas', 'discard'] as const;

async function ensureStream(jsm: JetStreamManager, key: StreamKey, limits: StreamLimitsConfig, replicas: number): Promise<TopologyChange> {
  const want = desiredStream(key, limits, replicas);
  let current: StreamConfig | undefined;
  try {
    current = (await retryTransient(() => jsm.streams.info(want.name))).config;
  } catch (err) {
    if (!isApiError(err, API_STREAM_NOT_FOUND)) throw err;
  }
  if (!current) {
    try {
      await jsm.streams.add(want);
    } catch (err) {
      throw new TidemarkError(ErrorCodes.STREAM_CONFLICT, `cannot create stream ${want.name} on ${want.subjects?.join(', ')}: ${(err as Error).message}`, { cause: err });
    }
    return { kind: 'stream', name: want.name, action: 'created' };
  }
  const conflicts: string[] = [];
  if ([...current.subjects].sort().join(',') !== [...(want.subjects ?? [])].sort().join(',')) {
    conflicts.push(`subjects are [${current.subjects.join(', ')}], Tidemark needs [${want.subjects?.join(', ')}]`);
  }
  if (current.retention !== want.retention) conflicts.push(`retention is ${current.retention}, Tidemark needs ${want.retention}`);
  if (current.storage !== want.storage) conflicts.push(`storage is ${current.storage}, Tidemark needs ${want.storage}`);
  if (conflicts.length) {
    throw new TidemarkError(ErrorCodes.STREAM_CONFLICT, `existing stream ${want.name} conflicts with Tidemark's topology: ${conflicts.join('; ')}. Remove or rename it, or point NATS_URL elsewhere.`);
  }
  const changed = MUTABLE_STREAM_FIELDS.filter((f) => want[f] !== undefined && current[f] !== want[f]);
  if (!changed.length) return { kind: 'stream', name: want.name, action: 'unchanged' };
  await jsm.streams.update(want.name, { ...current, ...Object.fromEntries(changed.map((f) => [f, want[f]])) });
  if ((want.num_replicas ?? 1) > current.num_replicas) await waitForRaised(jsm, want.name);
  return { kind: 'stream', name: want.name, action: 'updated', detail: describeChanges(current, want, changed) };
}

/**
 * Replaces a durable by one that delivers from `floor + 1`: what the old one had
 * delivered and not seen acked comes again, in stream order (ids make those copies
 * harmless). Another role's `ensureTopology` may recreate the durable in the moment it
 * is gone; that one has delivered nothing yet and is replaced in turn.
 */
async function recreateFrom(jsm: JetStreamManager, stream: string, want: Partial<ConsumerConfig> & { durable_name: string }, floor: number): Promise<void> {
  const config = floor > 0 ? { ...want, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: floor + 1 } : want;
  for (let attempt = 1; ; attempt++) {
    await jsm.consumers.delete(stream, want.durable_name).catch((err: unknown) => {
      if (!isApiError(err, API_CONSUMER_NOT_FOUND)) throw err;
    });
    try {
      await jsm.consumers.add(stream, config);
      return;
    } catch (err) {
      if (attempt >= 5) throw err;
    }
  }
}

/**
 * Starts the gateway's durable on INGEST over at its ack floor, so that it delivers
 * the rest in stream order, with no redelivery of what a predecessor held: an AckAll
 * ack counts only if its delivery sequence is above the last one acked (measured on
 * 2.9.10: a redelivery acked before an older delivery froze the floor for good).
 * Returns the floor, or leaves the durable as it is when it has nothing outstanding.
 *
 * A durable that is gone (a rewind whose delete went through and whose adds did not,
 * during an election on a loaded cluster; or removed by hand) is made anew from
 * `known`, the floor this gateway last had (also when a durable is there but behind
 * it): without this every later rewind failed
 * on it and the gateway forwarded nothing until restarted (measured: 90 s and
 * counting, on a three-node cluster beside a benchmark). Not knowing one, or knowing
 * it of another INGEST (`known.stream`, the creation time of the stream it was read
 * from: a stream made anew numbers its messages from 1 again, and starting past the
 * old floor would skip them), it starts from the stream's first message; what comes
 * again is dropped as copies. Returns the floor and the stream's creation time.
 */
export async function rewindGatewayConsumer(jsm: JetStreamManager, config: Config, known: { seq: number; stream?: string } = { seq: 0 }): Promise<{ floor: number; stream: string }> {
  const { stream, durable } = CONSUMERS.gateway;
  const [info, state] = await Promise.all([
    jsm.consumers.info(stream, durable).catch((err: unknown) => {
      if (isApiError(err, API_CONSUMER_NOT_FOUND)) return undefined;
      throw err;
    }),
    jsm.streams.info(stream),
  ]);
  const knownHere = known.stream === undefined || known.stream === state.created ? known.seq : 0;
  // sequences below the stream's first were removed before anyone read them; a durable
  // behind what this gateway forwarded (made anew from the start by `tidemark init`, say)
  // would forward all of that again, to be dropped only while the recent ids hold it
  const floor = Math.max(info?.ack_floor.stream_seq ?? 0, knownHere, state.state.first_seq - 1);
  const rewound = { floor, stream: state.created };
  if (info && info.num_ack_pending === 0 && info.num_redelivered === 0 && info.delivered.stream_seq === floor) return rewound;
  await recreateFrom(jsm, stream, desiredConsumer(stream, durable, config), floor);
  return rewound;
}

/**
 * Whether the gateway's durable on INGEST no longer exists, the stream with it (deleted,
 * to be made anew by the next `tidemark init` or role start); any other failure to tell is thrown.
 */
export async function gatewayConsumerGone(jsm: JetStreamManager): Promise<boolean> {
  const { stream, durable } = CONSUMERS.gateway;
  return jsm.consumers.info(stream, durable).then(
    () => false,
    (err: unknown) => {
      if (isApiError(err, API_CONSUMER_NOT_FOUND) || isApiError(err, API_STREAM_NOT_FOUND)) return true;
      throw err;
    },
  );
}

const MUTABLE_CONSUMER_FIELDS = ['ack_wait', 'max_ack_pending', 'max_deliver'] as const;

async function ensureConsumer(jsm: JetStreamManager, stream: string, durable: string, config: Config, deliverPolicy?: DeliverPolicy): Promise<TopologyChange> {
  const want = desiredConsumer(stream, durable, config, deliverPolicy);
  let current: ConsumerConfig | undefined;
  try {
    current = (await retryTransient(() => jsm.consumers.info(stream, durable))).config;
  } catch (err) {
    if (!isApiError(err, API_CONSUMER_NOT_FOUND)) throw err;
  }
  if (!current) {
    await jsm.consumers.add(stream, want);
    return { kind: 'consumer', name: `${stream}/${durable}`, action: 'created' };
  }
  if (current.deliver_subject || (current.ack_policy !== want.ack_policy && current.ack_policy !== AckPolicy.Explicit)) {
    throw new TidemarkError(ErrorCodes.STREAM_CONFLICT, `existing consumer ${stream}/${durable} is not a pull consumer with ${want.ack_policy} acks; delete it and re-run init`);
  }
  if (current.ack_policy !== want.ack_policy) {
    // an ack policy cannot be changed in place: the durable is made anew where the old one's acks end
    await recreateFrom(jsm, stream, want, (await jsm.consumers.info(stream, durable)).ack_floor.stream_seq);
    return { kind: 'consumer', name: `${stream}/${durable}`, action: 'updated' };
  }
  const changed = MUTABLE_CONSUMER_FIELDS.filter((f) => current[f] !== want[f]);
  if (!changed.length) return { kind: 'consumer', name: `${stream}/${durable}`, action: 'unchanged' };
  await jsm.consumers.update(stream, durable, Object.fromEntries(changed.map((f) => [f, want[f]])));
  return { kind: 'consumer', name: `${stream}/${durable}`, action: 'updated' };
}

/**
 * One durable on ALERTS per configured webhook (see monitor/webhook-sink.ts), so each
 * receiver has its own retries and a dead one holds up no other. A new webhook starts
 * with the alerts raised from then on, not the stream's history.
 */
export async function ensureWebhookConsumers(jsm: JetStreamManager, config: Config): Promise<TopologyChange[]> {
  const changes: TopologyChange[] = [];
  for (const hook of config.monitor.webhooks) {
    changes.push(await ensureConsumer(jsm, STREAMS.alerts.name, webhookDurable(hook), config, DeliverPolicy.New));
  }
  return changes;
}

/**
 * Creates or updates every stream, KV bucket and durable consumer (and the replicas of
 * RECON when it exists); idempotent, so every role may call it at start.
 */
export async function ensureTopology(jsm: JetStreamManager, config: Config): Promise<TopologyChange[]> {
  const changes: TopologyChange[] = [];
  for (const key of Object.keys(STREAMS) as StreamKey[]) {
    changes.push(await ensureStream(jsm, key, config.nats.streams[key], config.nats.replicas));
  }
  for (const spec of bucketSpecs(config)) changes.push(await ensureBucket(jsm, spec));
  const recon = await ensureReplicas(jsm, RECON_STREAM_NAME, config.nats.replicas, 'stream');
  if (recon) changes.push(recon);
  for (const { stream, durable } of Object.values(CONSUMERS)) {
    changes.push(await ensureConsumer(jsm, stream, durable, config));
  }
  changes.push(...(await ensureWebhookConsumers(jsm, config)));
  return changes;
}
