import { JetStreamApiError } from '@nats-io/jetstream';
import { NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';
import { sleep } from '../core/time.ts';
import { PublishError, type BatchPublisher, type PublishItem, type PublishOutcome } from './batch-publisher.ts';

/**
 * How long a JetStream call is retried while a stream or the meta group elects a new
 * leader. Measured on 2.9.10 with three servers on loopback: a new leader within 2–6 s
 * of a SIGKILL; the budget leaves room for a loaded machine.
 */
export const ELECTION_BUDGET_MS = 30_000;

/** What a PubAck or a status reply says while no leader answers: a 503, a timeout, no responders. */
const TRANSIENT_TEXT = /^503\b|no responders|no PubAck before the timeout|\btimeout\b|temporarily unavailable|no leader|not current/i;

/**
 * An error that means "nobody answered yet", not "the server said no": the request may
 * or may not have been applied, so a retry must be safe either way (a message id, or a
 * compare-and-set whose conflict the caller already handles).
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof TimeoutError || err instanceof NoRespondersError) return true;
  // js.publish reports a stream without a leader as "jetstream is not enabled", caused by no responders
  if (err instanceof Error && err.cause !== undefined && isTransient(err.cause)) return true;
  if (err instanceof RequestError) return err.isNoResponders() || err.cause instanceof TimeoutError;
  if (err instanceof JetStreamApiError) return err.status === 503 || err.code === 10008;
  // the batch publisher's refusal: its reason is what the PubAck or status said (`503 no stream answered`)
  if (err instanceof PublishError) return TRANSIENT_TEXT.test(err.reason);
  return err instanceof Error && TRANSIENT_TEXT.test(err.message);
}

const backoff = (attempt: number): number => {
  const base = Math.min(2_000, 100 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
};

/**
 * Runs a JetStream API, KV or publish call again while it fails transiently, with
 * jittered backoff, for at most `budgetMs`; any other error, or the last one, is thrown.
 */
export async function retryTransient<T>(work: () => Promise<T>, options: { budgetMs?: number; signal?: AbortSignal } = {}): Promise<T> {
  const deadline = performance.now() + (options.budgetMs ?? ELECTION_BUDGET_MS);
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (!isTransient(err) || performance.now() >= deadline || options.signal?.aborted) throw err;
      await sleep(backoff(attempt), options.signal);
    }
  }
}

/**
 * How long one attempt waits for its PubAcks. A batch of thousands is acknowledged in
 * well under a second here; PubAcks that went to a server just killed never come, and
 * waiting the publisher's usual 10 s for them was most of the failover pause.
 */
const ATTEMPT_TIMEOUT_MS = 3_000;

const transientOutcome = (outcome: PublishOutcome): boolean => !outcome.ok && TRANSIENT_TEXT.test(outcome.error);

/**
 * `publisher.publish` that sends again the items JetStream did not acknowledge because
 * no leader answered. Safe because every item retried this way carries a message id
 * (an item without one is not retried): a copy stored before the failure is dropped
 * by the stream's dedup and reported as a duplicate.
 */
export async function publishRetrying(publisher: BatchPublisher, items: PublishItem[], options: { budgetMs?: number; signal?: AbortSignal } = {}): Promise<PublishOutcome[]> {
  const deadline = performance.now() + (options.budgetMs ?? ELECTION_BUDGET_MS);
  const outcomes = await publisher.publish(items, ATTEMPT_TIMEOUT_MS);
  for (let attempt = 0; ; attempt++) {
    const again = outcomes.flatMap((outcome, i) => (transientOutcome(outcome) && items[i]!.msgId !== undefined ? [i] : []));
    if (again.length === 0 || performance.now() >= deadline || options.signal?.aborted) return outcomes;
    await sleep(backoff(attempt), options.signal);
    const retried = await publisher.publish(again.map((i) => items[i]!), ATTEMPT_TIMEOUT_MS);
    again.forEach((i, k) => (outcomes[i] = retried[k]!));
  }
}

/** Runs `work` until it succeeds or `stopped()`, with the same backoff: for watches that must come back after any failure. */
export async function retryForever<T>(work: () => Promise<T>, stopped: () => boolean): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (stopped()) throw err;
      await sleep(backoff(Math.min(attempt, 5)));
    }
  }
}
