import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import type { Clock } from '../core/time.ts';
import { terminateToDlq } from '../nats/dlq.ts';
import { poisonTracker } from '../nats/poison.ts';
import { sagaAdmission, UNDER_WAY } from './admission.ts';
import { sagaCache } from './cache.ts';
import type { SagaPublish } from './commands.ts';
import { sagaDeadlines } from './deadlines.ts';
import { decideLoop, type Drive, type OrchestratorStats } from './decide-loop.ts';
import type { Effects } from './effects.ts';
import { routeMessage, type RoutedInput } from './inputs.ts';
import type { SagaDefinition } from './logic/types.ts';
import type { SagaMetrics } from './metrics.ts';
import { startPump } from './pump.ts';
import type { RecordSummary, SagaRecord, SagaStore } from './store.ts';
import { SAGA_CONSUMERS, sagaNameOf } from './subjects.ts';

export type { OrchestratorStats } from './decide-loop.ts';

export type Orchestrator = {
  stats: OrchestratorStats;
  /** applies one input to one saga (decide-loop.ts) */
  drive: Drive;
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
 * landed, never before, and the input is acked only after it was sent. Here the
 * parts are wired: admission.ts, cache.ts, deadlines.ts and decide-loop.ts.
 */
export async function startOrchestrator(options: OrchestratorOptions): Promise<Orchestrator> {
  const { js, publish, store, clock, logger, metrics, effects } = options;
  const definitions = new Map(options.definitions.map((d) => [d.name, d]));
  const stats: OrchestratorStats = { inputs: 0, applied: 0, unchanged: 0, conflicts: 0, invalid: 0, ticks: 0 };
  const background = new Set<Promise<unknown>>();
  const inBackground = (work: Promise<unknown>) => {
    background.add(work);
    void work.finally(() => background.delete(work));
  };
  let stopping = false;
  const isStopping = () => stopping;

  const deadlines = sagaDeadlines({ clock, publish, logger, holdDeadlinesMs: options.holdDeadlinesMs, stopping: isStopping, inBackground, fired: () => stats.ticks++ });
  const admission = sagaAdmission(options.maxActive ?? Number.POSITIVE_INFINITY, isStopping, safely);
  const cache = sagaCache(store, (sagaId, summary) => {
    if (!summary || !UNDER_WAY.has(summary.status)) admission.release(sagaId);
    deadlines.schedule(sagaId, summary);
  });
  const drive = decideLoop({ definitions, store, cache, effects, metrics, stats, started: admission.started });

  const onWatch = (sagaId: string, revision: number, summary: RecordSummary | null, readRecord: () => SagaRecord | null) => {
    // our own writes come back through the watch too: nothing new in them
    if (cache.revisionOf(sagaId) >= revision) return;
    if (summary === null || definitions.has(sagaNameOf(sagaId))) cache.remember(sagaId, revision, summary, { read: readRecord });
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
    await admission.admit(msg);
    try {
      await handleOne(msg, routed);
    } finally {
      admission.admitted();
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
      deadlines.stop();
      watch.stop();
      admission.stop();
      await Promise.all(consumers.map((c) => c.stop()));
      await Promise.all(background);
    },
  };
}
