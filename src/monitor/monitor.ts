import type { ClickHouseClient } from '@clickhouse/client';
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../core/config.ts';
import { metricsRegistry } from '../core/metrics.ts';
import { terminateToDlq } from '../nats/dlq.ts';
import { instanceId } from '../core/instance.ts';
import { runLoop } from '../core/loop.ts';
import { systemClock, type Clock } from '../core/time.ts';
import { eventBatching, runBatchConsumer } from '../nats/batch-consumer.ts';
import { CONSUMERS, ensureWebhookConsumers } from '../nats/topology.ts';
import type { DelayStatsRow } from '../sinks/clickhouse/delay-stats-table.ts';
import { webhookRoutes } from '../sinks/webhooks.ts';
import { createAlertSink } from './alert-sink.ts';
import { createWebhookSink } from './webhook-sink.ts';
import { delayStatsWriter } from './delay-stats.ts';
import { openAlertGuard } from '../nats/alert-guard.ts';
import { idleExpiryOf } from './idle.ts';
import { createEventHandler } from './ingest.ts';
import { monitorMetricsFor } from './metrics.ts';
import { flushOutbox } from './outbox.ts';
import { compileSla, slaMatcher } from './sla.ts';
import { createSliceAccumulator } from './slices.ts';
import { openMonitorState } from './state.ts';
import { runTick } from './tick.ts';
import { readProgress, type Progress } from './watermark.ts';
import { bucketReplicas } from '../nats/buckets.ts';
import { clickHouseAnswers } from '../sinks/clickhouse/refusal.ts';

/** Shortest wait between two runs of the checks. */
const MIN_WAIT_MS = 20;

/** POSTs in flight per webhook: a slow receiver delays its own alerts, and only by this many at a time. */
const WEBHOOK_BATCH = 32;

export type MonitorOptions = {
  config: Config;
  js: JetStreamClient;
  clickhouse: ClickHouseClient;
  logger: Logger;
  clock?: Clock;
  /** judges webhook retryFor against the time alerts were stored on ALERTS (defaults to the system clock) */
  wallClock?: Clock;
  /** defaults to the process registry that /metrics serves */
  registry?: Registry;
  /** names this instance's delay_slices rows; defaults to host, pid and a random suffix */
  instance?: string;
  /** where webhook secretEnv names are looked up */
  env?: Record<string, string | undefined>;
};

export type Monitor = {
  instance: string;
  /** one pass of the clock-driven checks now (the loop also runs them every monitor.tick) */
  tick: () => Promise<void>;
  /** writes pending delay slices and recomputes delay_stats and the gauges now */
  flushStats: () => Promise<DelayStatsRow[]>;
  stop: () => Promise<void>;
};

/**
 * The delay-SLA monitor role: a durable pull consumer on EVENTS (shared by every
 * instance) that merges late events and arrivals into shared KV state; a clock loop
 * that turns that state into DelayedEvent, MissingData, DeadlineMissed and Resolved
 * alerts on ALERTS; a consumer of ALERTS that files every alert in ClickHouse; and
 * one durable consumer of ALERTS per webhook, which retries for up to its retryFor. Needs the topology (`ensureTopology`) and the migrations.
 */
export async function startMonitor(options: MonitorOptions): Promise<Monitor> {
  const { config, js, clickhouse, logger } = options;
  const clock = options.clock ?? systemClock;
  const wallClock = options.wallClock ?? systemClock;
  const monitor = config.monitor;
  const db = config.clickhouse.database;
  const instance = options.instance ?? instanceId();
  const routes = webhookRoutes(monitor.webhooks, options.env ?? process.env);
  const metrics = monitorMetricsFor(options.registry ?? metricsRegistry, monitor.maxMetricSources);
  const jsm = await js.jetstreamManager();
  const state = await openMonitorState(js, bucketReplicas(config, 'monitor'));
  const publish = await openAlertGuard(js, monitor.alertMemory, bucketReplicas(config, 'alertGuard'));
  const epoch = await state.epoch(clock.now());
  const slas = config.slas.map(compileSla);
  const slices = createSliceAccumulator(monitor.stats.every);
  const stats = delayStatsWriter({ clickhouse, db, instance, slices, sliceMs: monitor.stats.every, windows: monitor.stats.windows, clock, metrics });
  const controller = new AbortController();
  let progress: Progress = { watermark: Number.NEGATIVE_INFINITY, ackFloor: 0, caughtUp: false };

  const outboxDeps = { state, publish, clock, metrics, logger };
  const poison = { maxDeliveries: config.nats.poisonAfter, file: (msg: JsMsg, reason: string) => terminateToDlq(js, msg, reason), healthy: clickHouseAnswers(clickhouse) };
  const events = await runBatchConsumer({
    js,
    stream: CONSUMERS.monitor.stream,
    durable: CONSUMERS.monitor.durable,
    ...eventBatching(monitor.batchSize, config.ingest.eventsPerMessage),
    handler: createEventHandler({ match: slaMatcher(slas), reports: config.reports, state, clickhouse, db, slices, metrics, ackFloor: () => progress.ackFloor, epoch, maxSources: monitor.maxSourcesPerSla, idleExpiry: (sla) => idleExpiryOf(sla, monitor), raise: (key, outbox) => flushOutbox(outboxDeps, key, outbox), logger }),
    logger,
    poison,
  });
  const sink = await runBatchConsumer({
    js,
    stream: CONSUMERS.alertSink.stream,
    durable: CONSUMERS.alertSink.durable,
    batchSize: 100,
    handler: createAlertSink({ clickhouse, js, db, logger }),
    logger,
    poison,
  });
  await ensureWebhookConsumers(jsm, config);
  const webhooks = await Promise.all(
    routes.map((route) =>
      runBatchConsumer({
        js,
        stream: CONSUMERS.alertSink.stream,
        durable: route.durable,
        batchSize: WEBHOOK_BATCH,
        // pulled ahead only as many as one round handles: a queued alert must not sit out its ack_wait behind a slow receiver
        bufferMessages: WEBHOOK_BATCH,
        handler: createWebhookSink({ route, clickhouse, db, metrics, logger, signal: controller.signal, now: wallClock.now }),
        logger,
      })),
  );

  const tickDeps = { slas, reports: config.reports, monitor, state, publish, clickhouse, db, clock, metrics, logger, epoch, idleSweep: { at: Number.NEGATIVE_INFINITY } };
  /** one pass of the checks; returns the clock instant the next one could raise something */
  const check = async (): Promise<number> => {
    progress = await readProgress(jsm, clock, monitor.grace);
    return runTick(tickDeps, progress.watermark, progress.caughtUp);
  };

  let statsAt = clock.now();
  const statsWhenDue = async () => {
    if (clock.now() - statsAt < monitor.stats.every) return;
    statsAt = clock.now();
    await stats.flush().catch((err: unknown) => logger.error({ err }, 'delay statistics not written; retrying'));
  };
  const loop = runLoop({
    name: 'monitor tick',
    everyMs: monitor.tick,
    logger,
    step: async () => {
      // written whether or not the checks pass
      const wake = await check().finally(statsWhenDue);
      // a due instant before the next tick (a deadline, a slot's end plus grace, groupWait) is kept to within MIN_WAIT_MS;
      // the floor keeps a clock that stands still (a test's) from spinning the loop
      return Math.min(monitor.tick, Math.max(MIN_WAIT_MS, wake - clock.now()));
    },
  });

  logger.info({ instance, slas: slas.map((s) => s.id), epoch: new Date(epoch).toISOString() }, 'monitor started');
  return {
    instance,
    tick: async () => {
      await check();
    },
    flushStats: stats.flush,
    stop: async () => {
      controller.abort();
      await loop.stop();
      await events.stop();
      await sink.stop();
      await Promise.all(webhooks.map((w) => w.stop()));
      await stats.flush().catch((err: unknown) => logger.warn({ err }, 'final delay statistics not written'));
      await state.stop();
    },
  };
}
