import { terminateToDlq } from '../nats/dlq.ts';
import { poisonTracker } from '../nats/poison.ts';
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
import type { SagaPublish } from './commands.ts';
import { recordOf, type Loaded, type RecordSummary, type SagaRecord, type SagaStore } from './store.ts';
import { SAGA_CONSUMERS, sagaNameOf, tickSubject } from './subjects.ts';
import { timerWheel } from './timers.ts';
import { isCasConflict } from '../nats/cas.ts';

export type OrchestratorStats = { inputs: number; applied: number; unchanged: number; conflicts: number; invalid: number; ticks: number };

export type Orchestrator = {
  stats: OrchestratorStats;
  /**
   * Applies one input to one saga: read, decide, compare-and-set (re-deciding on
   * conflict), then sends what the new revision owes. An input that changes nothing
   * sends the latest revision's effects again: the instance that stored that revision
   * may have died before sending, and another copy of this input (a redelivery) may
   * be the one that was acked.
   */
  drive: (sagaId: string, input: SagaInput) => Promise<{ applied: boolean; record: SagaRecord | null }>;
  stop: () => Promise<void>;
};

export type OrchestratorOptions = {
  js: JetStreamClient;
  /** for deadline ticks; the effects publish commands and alerts */
  publish: SagaPublish;
  store: SagaStore;
  definitions: readonly SagaDefinition[];
  /** inputs handled (and prefetched) at once; one saga's inputs are still handled one at a time */
  concurrency: number;
  /** sagas under way started here, beyond which triggers wait: new sagas must not starve running ones */
  maxActive?: number;
  /** deadlines of sagas written before the start wait this long (the inputs consumer's ack_wait) */
  holdDeadlinesMs: number;
  clock: Clock;
  logger: Logger;
  metrics: SagaMetrics;
  effects: Effects;
  /** an input that keeps failing on its own after this many deliveries, while others pass, goes to the DLQ (nats.poisonAfter) */
  poisonAfter?: number;
  /**
   * On a quiet feed, whether an input's failure is its own and not an outage (poison.ts):
   * the orchestrator writes only to NATS, so NATS answering (nats/health.ts natsAnswers).
   * Without it, a failing input is filed only once other inputs pass.
   */
  healthy?: (err: unknown) => Promise<boolean>;
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
 * landed, never before, and the input is acked only after it was sent.
 */
export async function startOrchestrator(options: OrchestratorOptions): Promise<Orchestrator> {
  const { js, publish, store, clock, logger, metrics, effects } = options;
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
      publish(tickSubject(sagaNameOf(sagaId)), JSON.stringify(body), `tick:${sagaId}:${due}`).catch((err: unknown) => {
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
  const schedule = (sagaId: string, summary: RecordSummary | null) => {
    if (!summary || summary.due === null || TERMINAL.has(summary.status)) {
      dues.delete(sagaId);
      return wheel.set(sagaId, null);
    }
    dues.set(sagaId, summary.due);
    wheel.set(sagaId, summary.writtenAt < startedAt ? Math.max(summary.due, holdUntil) : summary.due);
  };
  // Admission: each saga started here holds a place until it ends or parks.
  const UNDER_WAY: ReadonlySet<SagaStatus> = new Set(['new', 'running', 'compensating']);
  const maxActive = options.maxActive ?? Number.POSITIVE_INFINITY;
  const startedHere = new Set<string>();
  // triggers admitted and still being handled: they count before their saga is stored
  let starting = 0;
  const waiting: Array<() => void> = [];
  const release = (sagaId: string) => {
    if (startedHere.delete(sagaId)) waiting.shift()?.();
  };
  const admit = async (msg: JsMsg) => {
    while (startedHere.size + starting >= maxActive && !stopping) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          resolve();
        };
        // a trigger held this long would be redelivered: tell the server it is in hand
        const timer = setTimeout(() => {
          const at = waiting.indexOf(wake);
          if (at >= 0) waiting.splice(at, 1);
          resolve();
        }, 5_000);
        waiting.push(wake);
      });
      safely(() => msg.working());
    }
    starting++;
  };
  const admitted = () => {
    starting--;
    waiting.shift()?.();
  };

  const summaryOf = (record: SagaRecord): RecordSummary => ({ status: record.status, due: record.due, writtenAt: record.events.at(-1)?.at ?? 0 });

  // The latest known revision of every active saga, from our own writes, our reads and
  // the watch, so an input usually costs one compare-and-set and no read. A stale entry
  // loses the compare-and-set, or is re-read before an input is dropped as a no-op.
  // Another instance's write is decoded only when an input for that saga comes here.
  const cache = new Map<string, { revision: number; known?: Known; read?: () => SagaRecord | null }>();
  const remember = (sagaId: string, revision: number, summary: RecordSummary | null, entry: { known?: Known; read?: () => SagaRecord | null }) => {
    if ((cache.get(sagaId)?.revision ?? 0) > revision) return;
    if (!summary || !UNDER_WAY.has(summary.status)) release(sagaId);
    if (summary && !TERMINAL.has(summary.status)) cache.set(sagaId, { revision, ...entry });
    else cache.delete(sagaId);
    schedule(sagaId, summary);
  };
  const cached = (sagaId: string): Known | undefined => {
    const entry = cache.get(sagaId);
    if (!entry || entry.known) return entry?.known;
    const record = entry.read?.();
    if (!record) return undefined;
    entry.known = { record, revision: entry.revision, state: fold(record.events) };
    return entry.known;
  };
  const read = async (sagaId: string): Promise<Known | null> => {
    const loaded = await store.load(sagaId);
    const known = loaded && { ...loaded, state: fold(loaded.record.events) };
    if (known) remember(sagaId, known.revision, summaryOf(known.record), { known });
    return known;
  };

  function drive(sagaId: string, input: SagaInput): Promise<{ applied: boolean; record: SagaRecord | null }> {
    const name = sagaNameOf(sagaId);
    const def = definitions.get(name);
    if (!def) return Promise.reject(new TidemarkError(ErrorCodes.SAGA_UNKNOWN, `no saga named "${name}" is defined here (saga ${sagaId})`));
    return serial(sagaId, async () => {
      const hit = cached(sagaId);
      let current = hit ?? (await read(sagaId));
      let fresh = !hit;
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
          current = await read(sagaId);
          fresh = true;
          continue;
        }
        stats.applied++;
        if (before.status === 'new' && UNDER_WAY.has(record.status)) startedHere.add(sagaId);
        countTransition(metrics, name, before.status, record.status);
        remember(sagaId, revision, summaryOf(record), { known: { record, revision, state } });
        // a failure here leaves the input unacked: its redelivery sends them again
        await effects.send(record, state);
        return { applied: true, record };
      }
    });
  }

  const onWatch = (sagaId: string, revision: number, summary: RecordSummary | null, readRecord: () => SagaRecord | null) => {
    // our own writes come back through the watch too: nothing new in them
    if ((cache.get(sagaId)?.revision ?? 0) >= revision) return;
    if (summary === null || definitions.has(sagaNameOf(sagaId))) remember(sagaId, revision, summary, { read: readRecord });
  };

  // one tracker per durable: an input is judged against the others of its own consumer
  const poison = { maxDeliveries: options.poisonAfter ?? 20, file: (msg: JsMsg, reason: string) => terminateToDlq(js, msg, reason), ...(options.healthy ? { healthy: options.healthy } : {}) };
  const trackers = new Map(Object.values(SAGA_CONSUMERS).map((spec) => [spec.stream + '/' + spec.durable, poisonTracker(poison, { stream: spec.stream, durable: spec.durable, logger })]));
  const trackerOf = (msg: JsMsg) => trackers.get(`${msg.info.stream}/${msg.info.consumer}`);

  const handleOne = async (msg: JsMsg, routed: RoutedInput): Promise<void> => {
    try {
      await drive(routed.sagaId, routed.input);
      safely(() => msg.ack());
      trackerOf(msg)?.passed();
    } catch (err) {
      if (stopping) return;
      logger.error({ err, sagaId: routed.sagaId, subject: msg.subject }, 'saga input failed; it will be redelivered');
      const tracker = trackerOf(msg);
      if (tracker) await tracker.failed(msg, err, 1_000).catch(() => safely(() => msg.nak(1_000)));
      else safely(() => msg.nak(1_000));
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
      // term() with no reason: 2.9 ignores reasons and would redeliver; the reason goes with the message to the DLQ
      logger.error({ err: (err as Error).message, subject: msg.subject, seq: msg.seq }, 'saga input rejected');
      await terminateToDlq(js, msg, `saga input rejected: ${(err as Error).message}`).catch(() => undefined);
      return;
    }
    // drive() queues behind earlier inputs of the same saga before its first await, so they keep stream order
    if (routed.input.type !== 'Start') return handleOne(msg, routed);
    await admit(msg);
    try {
      await handleOne(msg, routed);
    } finally {
      admitted();
    }
  };

  const watch = await store.watch(onWatch);
  const pump = (spec: { stream: string; durable: string }) => startPump({ js, stream: spec.stream, durable: spec.durable, concurrency: options.concurrency, handle, logger });
  const consumers = [await pump(SAGA_CONSUMERS.inputs), await pump(SAGA_CONSUMERS.triggers)];

  return {
    stats,
    drive,
    stop: async () => {
      stopping = true;
      wheel.stop();
      watch.stop();
      for (const resolve of waiting.splice(0)) resolve();
      await Promise.all(consumers.map((c) => c.stop()));
      await Promise.all(background);
    },
  };
}
