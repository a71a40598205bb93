import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import type { Clock } from '../core/time.ts';
import { routeMessage, type RoutedInput, type TickBody } from './inputs.ts';
import { startPump } from './pump.ts';
import { decide } from './logic/decide.ts';
import { evolve, fold } from './logic/evolve.ts';
import { TERMINAL, type SagaDefinition, type SagaInput, type SagaState, type SagaStatus } from './logic/types.ts';
import type { Effects } from './effects.ts';
import type { SagaMetrics } from './metrics.ts';
import { isConflict, recordOf, type Loaded, type SagaRecord, type SagaStore } from './store.ts';
import { SAGA_CONSUMERS, sagaNameOf, tickSubject } from './subjects.ts';
import { timerWheel } from './timers.ts';

export type OrchestratorStats = { inputs: number; applied: number; unchanged: number; conflicts: number; invalid: number; ticks: number };

export type Orchestrator = {
  stats: OrchestratorStats;
  /** Applies one input to one saga: read, decide, compare-and-set, re-deciding on conflict. */
  drive: (sagaId: string, input: SagaInput) => Promise<{ applied: boolean; record: SagaRecord | null }>;
  stop: () => Promise<void>;
};

export type OrchestratorOptions = {
  js: JetStreamClient;
  store: SagaStore;
  definitions: readonly SagaDefinition[];
  /** inputs handled (and prefetched) at once; one saga's inputs are still handled one at a time */
  concurrency: number;
  /** deadlines of sagas written before the start wait this long (the inputs consumer's ack_wait) */
  holdDeadlinesMs: number;
  clock: Clock;
  logger: Logger;
  metrics: SagaMetrics;
  effects: Effects;
};

type Known = Loaded & { state: SagaState };

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

const safely = (fn: () => void): void => {
  try {
    fn();
  } catch {
    // the connection is gone: the server redelivers after ack_wait
  }
};

/**
 * The orchestrator role: a durable pull consumer on `saga.in.>` shared by every
 * instance, plus a timer wheel for deadlines, rebuilt from the saga log at start.
 * Each saga's log is one KV key replaced by compare-and-set, so two instances never
 * both advance the same saga: the loser re-reads and re-decides. An input is acked
 * only after its events are stored, and a redelivered input decides nothing new, so
 * a crash anywhere repeats no step. A revision's command is sent once its write has
 * landed, never before; the dispatcher sends it again from the log if need be.
 */
export async function startOrchestrator(options: OrchestratorOptions): Promise<Orchestrator> {
  const { js, store, clock, logger, metrics, effects } = options;
  const definitions = new Map(options.definitions.map((d) => [d.name, d]));
  const stats: OrchestratorStats = { inputs: 0, applied: 0, unchanged: 0, conflicts: 0, invalid: 0, ticks: 0 };
  const serial = keyedQueue();
  const background = new Set<Promise<unknown>>();
  const inBackground = (work: Promise<unknown>) => {
    background.add(work);
    void work.finally(() => background.delete(work));
  };
  let stopping = false;

  // A deadline goes through the stream as an input rather than straight to drive():
  // replies stored before it are then handled before it, and every instance noticing
  // the same deadline publishes the same id, so it is handled once.
  const wheel = timerWheel(clock, (sagaId) => {
    const due = dues.get(sagaId);
    if (due === undefined) return;
    stats.ticks++;
    const body: TickBody = { sagaId, due };
    inBackground(
      js.publish(tickSubject(sagaNameOf(sagaId)), JSON.stringify(body), { msgID: `tick:${sagaId}:${due}` }).catch((err: unknown) => {
        if (stopping) return;
        logger.warn({ err, sagaId }, 'saga deadline not published; trying again in 1s');
        wheel.set(sagaId, clock.now() + 1_000);
      }),
    );
  });

  // Inputs a crashed instance held unacked come back only after ack_wait; a deadline
  // fired before then would overtake a reply that was in time. Only sagas written
  // before this start can have such inputs, so only their deadlines wait.
  const startedAt = clock.now();
  const holdUntil = startedAt + options.holdDeadlinesMs;
  const dues = new Map<string, number>();
  const schedule = (sagaId: string, record: SagaRecord | null) => {
    if (!record || record.due === null || TERMINAL.has(record.status)) {
      dues.delete(sagaId);
      return wheel.set(sagaId, null);
    }
    dues.set(sagaId, record.due);
    const writtenBeforeStart = (record.events.at(-1)?.at ?? 0) < startedAt;
    wheel.set(sagaId, writtenBeforeStart ? Math.max(record.due, holdUntil) : record.due);
  };

  // The latest known revision of every active saga, from our own writes, our reads and
  // the watch, so an input usually costs one compare-and-set and no read. A stale entry
  // loses the compare-and-set, or is re-read before an input is dropped as a no-op.
  const known = new Map<string, Known>();
  const remember = (sagaId: string, entry: Known | null) => {
    if (entry && (known.get(sagaId)?.revision ?? 0) > entry.revision) return;
    if (entry && !TERMINAL.has(entry.record.status)) known.set(sagaId, entry);
    else known.delete(sagaId);
    schedule(sagaId, entry?.record ?? null);
  };
  const read = async (sagaId: string): Promise<Known | null> => {
    const loaded = await store.load(sagaId);
    const entry = loaded && { ...loaded, state: fold(loaded.record.events) };
    if (entry) remember(sagaId, entry);
    return entry;
  };

  function drive(sagaId: string, input: SagaInput): Promise<{ applied: boolean; record: SagaRecord | null }> {
    const name = sagaNameOf(sagaId);
    const def = definitions.get(name);
    if (!def) return Promise.reject(new TidemarkError(ErrorCodes.SAGA_UNKNOWN, `no saga named "${name}" is defined here (saga ${sagaId})`));
    return serial(sagaId, async () => {
      const cached = known.get(sagaId);
      let current = cached ?? (await read(sagaId));
      let fresh = !cached;
      for (;;) {
        const before = current?.state ?? fold([]);
        const next = decide(def, before, input);
        if (!next.length) {
          // Dropping an input is only safe against the latest revision: a cached one may
          // miss another instance's write (a reply to a command it sent, a backoff it set)
          if (!fresh) {
            const latest = await read(sagaId);
            fresh = true;
            if (latest?.revision !== current?.revision) {
              current = latest;
              continue;
            }
          }
          stats.unchanged++;
          return { applied: false, record: current?.record ?? null };
        }
        const state = next.reduce(evolve, before);
        const record = recordOf([...(current?.record.events ?? []), ...next], state);
        let revision: number;
        try {
          revision = await store.save(record, current?.revision ?? null);
        } catch (err) {
          if (!isConflict(err)) throw err;
          stats.conflicts++;
          metrics.conflict(name);
          current = await read(sagaId);
          fresh = true;
          continue;
        }
        stats.applied++;
        countTransition(metrics, name, before.status, record.status);
        remember(sagaId, { record, revision, state });
        // sent now rather than when the dispatcher reaches this revision; if this fails
        // or the process dies first, the dispatcher sends it from the log
        inBackground(
          effects.send(record, state).then(
            () => effects.sent(revision),
            (err: unknown) => logger.warn({ err, sagaId }, 'saga effects not sent yet; the dispatcher will'),
          ),
        );
        return { applied: true, record };
      }
    });
  }

  const onWatch = (sagaId: string, revision: number, readRecord: () => SagaRecord | null) => {
    // our own writes come back through the watch too: nothing new in them
    if ((known.get(sagaId)?.revision ?? 0) >= revision) return;
    const record = readRecord();
    if (!record) return remember(sagaId, null);
    if (definitions.has(record.name)) remember(sagaId, { record, revision, state: fold(record.events) });
  };

  const handleOne = async (msg: JsMsg, routed: RoutedInput): Promise<void> => {
    try {
      await drive(routed.sagaId, routed.input);
      safely(() => msg.ack());
    } catch (err) {
      if (stopping) return;
      logger.error({ err, sagaId: routed.sagaId, subject: msg.subject }, 'saga input failed; it will be redelivered');
      safely(() => msg.nak(1_000));
    }
  };

  const handle = async (msg: JsMsg): Promise<void> => {
    stats.inputs++;
    let routed: RoutedInput;
    try {
      routed = routeMessage(msg, clock.now());
      if (!definitions.has(routed.saga)) throw new TidemarkError(ErrorCodes.SAGA_UNKNOWN, `no saga named "${routed.saga}" is defined`);
    } catch (err) {
      stats.invalid++;
      // term() with no reason: 2.9 ignores reasons and would redeliver; the message stays in SAGAS for inspection
      logger.error({ err: (err as Error).message, subject: msg.subject, seq: msg.seq }, 'saga input rejected');
      safely(() => msg.term());
      return;
    }
    // drive() queues behind earlier inputs of the same saga before its first await, so they keep stream order
    await handleOne(msg, routed);
  };

  const unwatch = await store.watch(onWatch, (err) => logger.error({ err }, 'saga watch ended; deadlines of other instances are no longer tracked here'));
  const consumer = await startPump({ js, stream: SAGA_CONSUMERS.orchestrator.stream, durable: SAGA_CONSUMERS.orchestrator.durable, concurrency: options.concurrency, handle, logger });

  return {
    stats,
    drive,
    stop: async () => {
      stopping = true;
      wheel.stop();
      unwatch();
      await consumer.stop();
      await Promise.all(background);
    },
  };
}
