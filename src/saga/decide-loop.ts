import type { SagaMetrics } from './metrics.ts';
import type { Effects } from './effects.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { isCasConflict } from '../nats/cas.ts';
import { UNDER_WAY } from './admission.ts';
import { summaryOf, type SagaCache } from './cache.ts';
import { decide } from './logic/decide.ts';
import { evolve, fold } from './logic/evolve.ts';
import type { SagaDefinition, SagaInput, SagaStatus } from './logic/types.ts';
import { recordOf, type SagaRecord, type SagaStore } from './store.ts';
import { sagaNameOf } from './subjects.ts';

export type OrchestratorStats = { inputs: number; applied: number; unchanged: number; conflicts: number; invalid: number; ticks: number };

export type Drive = (sagaId: string, input: SagaInput) => Promise<{ applied: boolean; record: SagaRecord | null }>;

/** Runs `fn` after every earlier call for the same key has settled. */
function keyedQueue() {
  const tails = new Map<string, Promise<unknown>>();
  return <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const run = (tails.get(key) ?? Promise.resolve()).then(fn, fn);
    const tail = run.catch(() => undefined);
    tails.set(key, tail);
    void tail.then(() => tails.get(key) === tail && tails.delete(key));
    return run;
  };
}

function countTransition(metrics: SagaMetrics, saga: string, from: SagaStatus, to: SagaStatus): void {
  if (from === to) return;
  if (from === 'new') metrics.started(saga);
  if (to === 'completed') metrics.completed(saga);
  if (to === 'compensated') metrics.compensated(saga);
  if (to === 'parked') metrics.parked(saga);
}

/**
 * The decide loop: applies one input to one saga, one input of a saga at a time: read
 * (or the cache), decide, compare-and-set (re-deciding on conflict), then sends what
 * the new revision owes. An input that changes nothing sends the latest revision's
 * effects again: the instance that stored that revision may have died before sending,
 * and another copy of this input (a redelivery) may be the one that was acked.
 */
export function decideLoop(deps: {
  definitions: ReadonlyMap<string, SagaDefinition>;
  store: SagaStore;
  cache: SagaCache;
  effects: Effects;
  metrics: SagaMetrics;
  stats: OrchestratorStats;
  /** a saga this instance started, now under way */
  started: (sagaId: string) => void;
}): Drive {
  const { definitions, store, cache, effects, metrics, stats } = deps;
  const serial = keyedQueue();
  return (sagaId, input) => {
    const name = sagaNameOf(sagaId);
    const def = definitions.get(name);
    if (!def) return Promise.reject(new TidemarkError(ErrorCodes.SAGA_UNKNOWN, `no saga named "${name}" is defined here (saga ${sagaId})`));
    return serial(sagaId, async () => {
      const hit = cache.cached(sagaId);
      let current = hit ?? (await cache.read(sagaId));
      let fresh = !hit;
      for (;;) {
        const before = current?.state ?? fold([]);
        const next = decide(def, before, input);
        if (!next.length) {
          // Dropping an input is only safe against the latest revision: a cached one may
          // miss another instance's write (a reply to a command it sent, a backoff it set)
          if (!fresh) {
            const latest = await cache.read(sagaId);
            fresh = true;
            if (latest?.revision !== current?.revision) {
              current = latest;
              continue;
            }
          }
          stats.unchanged++;
          // JetStream drops the copy when the first send landed
          if (current) await effects.send(current.record, current.state);
          return { applied: false, record: current?.record ?? null };
        }
        const state = next.reduce(evolve, before);
        const record = recordOf([...(current?.record.events ?? []), ...next], state);
        let revision: number;
        try {
          revision = await store.save(record, current?.revision ?? null);
        } catch (err) {
          if (!isCasConflict(err)) throw err;
          stats.conflicts++;
          metrics.conflict(name);
          current = await cache.read(sagaId);
          fresh = true;
          continue;
        }
        stats.applied++;
        if (before.status === 'new' && UNDER_WAY.has(record.status)) deps.started(sagaId);
        countTransition(metrics, name, before.status, record.status);
        cache.remember(sagaId, revision, summaryOf(record), { known: { record, revision, state } });
        // a failure here leaves the input unacked: its redelivery sends them again
        await effects.send(record, state);
        return { applied: true, record };
      }
    });
  };
}
