import type { ClickHouseClient } from '@clickhouse/client';
import type { JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { Config, ReconciliationConfig } from '../core/config.ts';
import { instanceId } from '../core/instance.ts';
import { systemClock, type Clock } from '../core/time.ts';
import { migrate, migrationOptions } from '../clickhouse/migrations.ts';
import { terminateToDlq } from '../nats/dlq.ts';
import { openClaims } from './claims.ts';
import { ensureFeeds } from './feeds.ts';
import { openStateStore, type StateStore } from './state-store.ts';
import { startExpiryCursor } from './stream-expiry.ts';
import { startMatchCursor } from './stream-match.ts';
import { bucketReplicas } from '../nats/buckets.ts';
import { clickHouseAnswers } from '../sinks/clickhouse/refusal.ts';

export type StreamingOptions = {
  config: Config;
  js: JetStreamClient;
  jsm: JetStreamManager;
  clickhouse: ClickHouseClient;
  logger: Logger;
  clock?: Clock;
  /** only these reconciliations (default: every one whose sides are subject feeds) */
  names?: string[];
};

export type ReconcileStreaming = {
  /** the reconciliations being run, with their match state (for reports and tests) */
  running: Array<{ recon: ReconciliationConfig; store: StateStore }>;
  stop: () => Promise<void>;
};

export const isStreamingRecon = (recon: ReconciliationConfig): boolean => recon.a.subject !== undefined && recon.b.subject !== undefined;

/**
 * The streaming reconciliation role (`tidemark reconcile stream`, and part of `up`):
 * per definition with subject feeds, a match cursor and an expiry cursor on each
 * feed. Every instance shares the durable consumers and the KV state, so more
 * instances split the work; a stopped or killed one loses nothing.
 */
export async function startReconcileStreaming(options: StreamingOptions): Promise<ReconcileStreaming> {
  const { config, js, jsm, clickhouse, logger } = options;
  const clock = options.clock ?? systemClock;
  const recons = config.reconciliations.filter((r) => isStreamingRecon(r) && (options.names === undefined || options.names.includes(r.name)));
  if (recons.length > 0) await migrate(clickhouse, config.clickhouse.database, migrationOptions(config));
  const actor = instanceId('stream');
  // a claim outlives its holder by as long as JetStream waits for a lost ack
  const claims = await openClaims(js, { clock, owner: actor, leaseMs: config.nats.ackWait, replicas: bucketReplicas(config, 'reconClaims') });
  const stops: Array<() => Promise<void>> = [];
  const running: ReconcileStreaming['running'] = [];
  for (const recon of recons) {
    const [feedA, feedB] = await ensureFeeds(jsm, config, recon);
    const store = await openStateStore(js, recon, bucketReplicas(config, 'reconState'));
    const poison = { maxDeliveries: config.nats.poisonAfter, file: (msg: JsMsg, reason: string) => terminateToDlq(js, msg, reason), healthy: clickHouseAnswers(clickhouse) };
    const deps = { recon, clickhouse, db: config.clickhouse.database, js, jsm, claims, clock, actor, store, logger: logger.child({ reconciliation: recon.name }), poison };
    for (const [feed, other] of [[feedA!, feedB!], [feedB!, feedA!]] as const) {
      const match = await startMatchCursor(deps, feed);
      const expiry = startExpiryCursor(deps, feed, other, config.nats.ackWait);
      stops.push(match.stop, expiry.stop);
    }
    running.push({ recon, store });
    logger.info({ reconciliation: recon.name, a: feedA!.subject, b: feedB!.subject, lag: recon.lag }, 'streaming reconciliation started');
  }
  return {
    running,
    stop: async () => {
      await Promise.all(stops.map((stop) => stop()));
    },
  };
}
