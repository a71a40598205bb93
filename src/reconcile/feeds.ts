import { AckPolicy, DeliverPolicy, DiscardPolicy, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Config, ReconciliationConfig } from '../core/config.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import type { Side } from './logic/types.ts';
import { maxAckPending } from '../nats/topology.ts';

/**
 * Reconciliation's own stream: feeds published for reconciliation (`recon.<…>`) and the
 * manual queue (`recon.manual.<name>`). A feed may also be any subject another stream
 * already captures (e.g. `events.pos.sale` on EVENTS): the consumer is made there.
 */
export const RECON_STREAM = { name: 'RECON', subjects: ['recon.>'] } as const;
const MAX_AGE_MS = 30 * 86_400_000;
const DUPLICATE_WINDOW_MS = 10 * 60_000;

export const manualSubject = (name: string): string => `recon.manual.${name}`;

const API_STREAM_NOT_FOUND = 10059;
const API_CONSUMER_NOT_FOUND = 10014;
const isApiError = (err: unknown, code: number): boolean => err instanceof JetStreamApiError && err.apiError().err_code === code;

/** Creates RECON; `tidemark init` (ensureTopology) keeps the replicas of an existing one. */
export async function ensureReconStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  try {
    const info = await jsm.streams.info(RECON_STREAM.name);
    if (info.config.subjects.join(',') !== RECON_STREAM.subjects.join(',')) {
      throw new TidemarkError(ErrorCodes.STREAM_CONFLICT, `existing stream ${RECON_STREAM.name} captures [${info.config.subjects.join(', ')}], reconciliation needs [recon.>]`);
    }
    return;
  } catch (err) {
    if (!isApiError(err, API_STREAM_NOT_FOUND)) throw err;
  }
  await jsm.streams.add({
    name: RECON_STREAM.name,
    subjects: [...RECON_STREAM.subjects],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(MAX_AGE_MS),
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    num_replicas: replicas,
  });
}

export type FeedConsumer = { stream: string; durable: string; subject: string };
export type Feed = { side: Side; subject: string; stream: string; match: FeedConsumer; expiry: FeedConsumer };

/** Durable names: `recon_<name>_<a|b>_<match|expiry>`; every instance of the role shares them. */
export const durableName = (name: string, side: Side, role: 'match' | 'expiry'): string => `recon_${name}_${side.toLowerCase()}_${role}`;

async function ensureConsumer(jsm: JetStreamManager, consumer: FeedConsumer, config: Config, maxAckPending: number): Promise<void> {
  try {
    const info = await jsm.consumers.info(consumer.stream, consumer.durable);
    if (info.config.filter_subject !== consumer.subject) {
      throw new TidemarkError(ErrorCodes.STREAM_CONFLICT, `consumer ${consumer.stream}/${consumer.durable} reads ${info.config.filter_subject}, the definition says ${consumer.subject}; delete the consumer to start that feed over`);
    }
    return;
  } catch (err) {
    if (!isApiError(err, API_CONSUMER_NOT_FOUND)) throw err;
  }
  await jsm.consumers.add(consumer.stream, {
    durable_name: consumer.durable,
    filter_subject: consumer.subject,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(config.nats.ackWait),
    max_ack_pending: maxAckPending,
    max_deliver: -1,
  });
}

/**
 * The two durable consumers per feed: `match` pairs records as they arrive; `expiry`
 * trails the same messages and declares one missing once its window has passed.
 * Idempotent, so every reconciler calls it at start.
 */
export async function ensureFeeds(jsm: JetStreamManager, config: Config, recon: ReconciliationConfig): Promise<Feed[]> {
  await ensureReconStream(jsm, config.nats.replicas);
  const feeds: Feed[] = [];
  for (const side of ['A', 'B'] as const) {
    const subject = (side === 'A' ? recon.a : recon.b).subject;
    if (subject === undefined) throw new TidemarkError(ErrorCodes.RECON_MODE_UNSUPPORTED, `reconciliation ${recon.name}: side ${side} is a ClickHouse source; streaming needs subject feeds on both sides`);
    let stream: string;
    try {
      stream = await jsm.streams.find(subject);
    } catch (err) {
      throw new TidemarkError(ErrorCodes.RECON_FEED_UNBOUND, `reconciliation ${recon.name}: no stream captures ${subject}; publish the feed under recon.> or on a subject of an existing stream`, { cause: err });
    }
    const match = { stream, durable: durableName(recon.name, side, 'match'), subject };
    const expiry = { stream, durable: durableName(recon.name, side, 'expiry'), subject };
    await ensureConsumer(jsm, match, config, Math.max(maxAckPending(stream, config), recon.stream.batchSize * 4));
    // the expiry cursor holds at most one batch while it waits for that batch's windows
    await ensureConsumer(jsm, expiry, config, recon.stream.batchSize * 2);
    feeds.push({ side, subject, stream, match, expiry });
  }
  return feeds;
}
