import { createHash } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import { BUCKETS, openBucket } from './buckets.ts';
import { alertMessage, type SourceAlertKind } from '../core/alert-kinds.ts';
import type { Alert } from '../monitor/alerts.ts';
import { publishAlert } from './alert-publish.ts';
import { retryTransient } from './retry.ts';
import { isCasConflict } from './cas.ts';

/**
 * The durable once-only guard. JetStream drops a second publish of the same
 * Nats-Msg-Id only within the stream's duplicate window; this bucket remembers every
 * published alert id for `memoryMs` (a bucket-level max_age: 2.9 has no per-key TTL),
 * so a state replayed long after, or a second deployment, cannot raise it again.
 *
 * Check, publish, then record: two instances flushing one outbox at the same moment
 * both pass the check, and JetStream's dedup (seconds apart, well inside the window)
 * keeps one; a crash between publish and record is repaired the same way.
 */
export const ALERT_GUARD_BUCKET = BUCKETS.alertGuard;

export type PublishOutcome = 'published' | 'duplicate';
/** What the guard needs of an alert: the monitor's, or another role's (the processor's realtime CardinalityCapped). */
export type GuardedAlert = { id: string; kind: SourceAlertKind; source: string };
export type AlertPublisher<A extends GuardedAlert = Alert> = (alert: A, raisedAt: number) => Promise<PublishOutcome>;

const enc = new TextEncoder();
const guardKey = (id: string): string => `a.${createHash('sha256').update(id).digest('hex').slice(0, 40)}`;

export async function openAlertGuard<A extends GuardedAlert = Alert>(js: JetStreamClient, memoryMs: number, replicas = 1): Promise<AlertPublisher<A>> {
  const kv = await openBucket(js, { name: ALERT_GUARD_BUCKET, replicas, ttl: memoryMs });
  return async (alert, raisedAt) => {
    const key = guardKey(alert.id);
    const known = await retryTransient(() => kv.get(key));
    if (known && known.operation === 'PUT') return 'duplicate';
    const message = alertMessage({ ...alert, raisedAt });
    const ack = await retryTransient(() => publishAlert(js, message));
    try {
      await retryTransient(() => kv.create(key, enc.encode(JSON.stringify({ id: alert.id, seq: ack.seq }))));
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
    return ack.duplicate ? 'duplicate' : 'published';
  };
}
