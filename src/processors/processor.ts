import type { ClickHouseClient } from '@clickhouse/client';
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { Config } from '../core/config.ts';
import { encodeEvent, eventSubject, type TidemarkEvent } from '../core/envelope.ts';
import { systemClock, sleep, type Clock } from '../core/time.ts';
import { dlqRecord, publishToDlq, terminateToDlq } from '../nats/dlq.ts';
import { eventBatching, runBatchConsumer } from '../nats/batch-consumer.ts';
import { delivery, deliveryCount, headerRecord, storedAtMs } from '../nats/js-msg.ts';
import { CONSUMERS } from '../nats/topology.ts';
import { retryTransient } from '../nats/retry.ts';
import { insertEvents } from '../sinks/clickhouse/events-table.ts';
import { insertIsolating } from '../sinks/clickhouse/isolating-insert.ts';
import { clickHouseAnswers, isRowRefusal } from '../sinks/clickhouse/refusal.ts';
import { openRevisionStore, type RevisionStore } from './daily/revision-store.ts';
import { startRevisor, type Revisor } from './daily/revisor.ts';
import { decodeBatch, decodeMessage, touchedDays } from './event-batch.ts';
import { startRealtime, type Realtime } from './realtime/realtime.ts';
import { openArbiter, RealtimeFenced, RealtimeStopped } from './realtime/fence.ts';
import { cappedAlerts, type CappedAlerts, type RealtimeCappedAlert } from './realtime/capped-alert.ts';
import { openAlertGuard } from '../nats/alert-guard.ts';
import { insertRealtime, replaceRealtimeView } from '../sinks/clickhouse/realtime-table.ts';
import { insertOrFile } from '../sinks/clickhouse/refused-rows.ts';
import { createHash } from 'node:crypto';
import { instanceId } from '../core/instance.ts';
import { bucketReplicas } from '../nats/buckets.ts';
import { streamEpoch } from './daily/arrival-mark.ts';

/** How long a stopping processor lets its batches under way finish before the realtime view stops. */
const STOP_GRACE_MS = 5_000;

export type ProcessorStats = { events: number; batches: number; insertRetries: number; refused: number };

export type Processor = {
  stats: ProcessorStats;
  revisor: Revisor;
  realtime: Realtime;
  capped: CappedAlerts;
  store: RevisionStore;
  stop: () => Promise<void>;
};

export type ProcessorOptions = {
  config: Config;
  js: JetStreamClient;
  clickhouse: ClickHouseClient;
  logger: Logger;
  clock?: Clock;
  /** how often the revisor looks for dirty and closable days */
  revisorIntervalMs?: number;
};

/**
 * Retries a ClickHouse write until it succeeds or the processor stops, telling
 * JetStream the batch is still being worked on so it is not redelivered meanwhile.
 */
async function untilStored(write: () => Promise<void>, msgs: JsMsg[], stopping: () => boolean, logger: Logger, stats: ProcessorStats): Promise<void> {
  let delay = 100;
  for (;;) {
    try {
      await write();
      return;
    } catch (err) {
      // the rows themselves are refused: no retry can help, the caller isolates them
      if (stopping() || isRowRefusal(err)) throw err;
      stats.insertRetries++;
      logger.warn({ err: (err as Error).message, retryInMs: delay }, 'ClickHouse write failed; retrying');
      for (const msg of msgs) msg.working();
      await sleep(delay);
      delay = Math.min(delay * 2, 5_000);
    }
  }
}

/**
 * The processor role: a durable pull consumer on EVENTS shared by every instance.
 * Each batch is stored in `events`, its days are marked dirty in the shared KV, and
 * only then acked; the revisor turns dirty days into revisions.
 */
export async function startProcessor(options: ProcessorOptions): Promise<Processor> {
  const { config, js, clickhouse, logger } = options;
  const clock = options.clock ?? systemClock;
  const db = config.clickhouse.database;
  const stats: ProcessorStats = { events: 0, batches: 0, insertRetries: 0, refused: 0 };
  const store = await openRevisionStore(js, bucketReplicas(config, 'daily'));
  // rows carry the stream they came from, so a stream made anew never passes for the old one's high-water marks
  const epoch = await retryTransient(() => streamEpoch(js));
  const livenessMs = config.processor.liveness;
  // the realtime group cap says what it cut in an alert, once per report and day however many processors cut
  const capped = cappedAlerts({
    publish: await openAlertGuard<RealtimeCappedAlert>(js, config.monitor.alertMemory, bucketReplicas(config, 'alertGuard')),
    limit: config.processor.maxRealtimeGroups,
    logger,
    now: () => clock.now(),
  });
  await replaceRealtimeView(clickhouse, db, config.reports, livenessMs);
  const realtime = startRealtime({
    reports: config.reports,
    clickhouse,
    db,
    clock,
    logger,
    instance: instanceId(),
    refreshMs: config.processor.refresh,
    idleMs: config.processor.idleTimeout,
    outOfOrdernessMs: config.processor.outOfOrderness,
    maxSources: config.processor.maxSources,
    recentIds: config.processor.recentIds,
    livenessMs,
    // on the consumer's own connection: its answer comes behind every message delivered here before it (`since`, fence.ts)
    ackFloor: async () => {
      const info = await (await js.consumers.get(CONSUMERS.processor.stream, CONSUMERS.processor.durable)).info();
      return { floor: info.ack_floor.stream_seq, delivered: info.delivered.stream_seq };
    },
    maxGroups: config.processor.maxRealtimeGroups,
    onCut: capped.note,
    insert: (rows) => insertOrFile(js, 'realtime_windows', rows, (part) => insertRealtime(clickhouse, db, part), clock.now()),
    arbiter: await openArbiter(js, bucketReplicas(config, 'realtimeFence')),
  });
  // known to the others before it holds any message: one it holds is never folded elsewhere without fencing it first
  await realtime.start();
  let stopping = false;

  // The realtime view shows what has arrived: a message's events go into it as soon as
  // it is here, not when its batch's turn to be stored comes. A redelivered message is
  // folded again only if no instance's written checkpoint has it (see realtime.ts).
  const decoded = new WeakMap<JsMsg, TidemarkEvent[] | null>();
  const onArrival = (msg: JsMsg) => {
    const events = decodeMessage(msg);
    decoded.set(msg, events);
    if (events) realtime.arrive(delivery(msg).seq, deliveryCount(msg) > 1, events);
  };

  const handler = async (msgs: JsMsg[]): Promise<void> => {
    const { events, undecodable } = decodeBatch(msgs, decoded, epoch);
    const refused = await insertIsolating(events, (rows) => untilStored(() => insertEvents(clickhouse, db, rows), msgs, () => stopping, logger, stats));
    const refusedEvents = new Set(refused.map((r) => r.row));
    await Promise.all(touchedDays(config.reports, events.filter((e) => !refusedEvents.has(e))).map((ref) => store.markDirty(ref)));
    // a row ClickHouse refuses goes to the DLQ with the engine's error; the rest of the batch is stored and acked
    for (const { row, error } of refused) {
      const record = dlqRecord({ code: 'REFUSED_BY_SINK', reason: `ClickHouse refused the row: ${error}` }, encodeEvent(row), eventSubject(row), {}, { stream: 'INGEST', seq: row.seq }, row.receivedAt);
      await publishToDlq(js, record, `refused-${row.seq}-${createHash('sha256').update(`${row.source}\n${row.id}`).digest('hex').slice(0, 16)}`);
    }
    if (refused.length) {
      stats.refused += refused.length;
      logger.warn({ refused: refused.length, example: refused[0]!.error.slice(0, 300) }, 'ClickHouse refused rows; they are in the DLQ, the rest of the batch is stored');
    }
    for (const msg of undecodable) {
      const record = dlqRecord({ code: 'INVALID_JSON', reason: 'a message on EVENTS is not a Tidemark event' }, msg.data, msg.subject, headerRecord(msg), { stream: 'EVENTS', seq: msg.seq }, storedAtMs(msg));
      await publishToDlq(js, record, `EVENTS-${msg.seq}`);
    }
    // the realtime view may hold a redelivered message back (up to the liveness of a dead
    // instance): the batch stays ours meanwhile, not redelivered to another processor
    const keepAlive = setInterval(() => msgs.forEach((msg) => msg.working()), Math.max(100, config.nats.ackWait / 3));
    try {
      await realtime.durable(msgs.map((msg) => delivery(msg).seq)).finally(() => clearInterval(keepAlive));
    } catch (err) {
      if (err instanceof RealtimeStopped) return;
      if (!(err instanceof RealtimeFenced)) throw err;
      // The realtime fold was dropped: the messages must come again (stored rows are
      // idempotent). Not nak'd: after a stall past ackWait another instance may hold them
      // now, and a nak would deliver them a second time while it does.
      const seqs = msgs.map((msg) => delivery(msg).seq);
      logger.warn({ messages: msgs.length, seqs: [Math.min(...seqs), Math.max(...seqs)] }, 'realtime fold dropped by a fence: these messages are not acked and come again after ackWait');
      return;
    }
    for (const msg of msgs) msg.ack();
    stats.events += events.length;
    stats.batches++;
  };

  const consumer = await runBatchConsumer({
    js,
    stream: CONSUMERS.processor.stream,
    durable: CONSUMERS.processor.durable,
    ...eventBatching(config.processor.batchSize, config.ingest.eventsPerMessage),
    handler,
    onArrival,
    lingerMs: config.processor.linger,
    logger,
    // the next batch is encoded and sent while ClickHouse stores the previous one
    concurrency: 2,
    poison: { maxDeliveries: config.nats.poisonAfter, file: (msg, reason) => terminateToDlq(js, msg, reason), healthy: clickHouseAnswers(clickhouse) },
  });
  const revisor = startRevisor({ reports: config.reports, store, clickhouse, db, js, clock, logger }, { intervalMs: options.revisorIntervalMs ?? 50 });

  return {
    stats,
    revisor,
    realtime,
    capped,
    store,
    stop: async () => {
      stopping = true;
      const consumed = consumer.stop();
      // A batch whose redelivered message waits at the realtime gate (for a silent instance,
      // up to the liveness) would hold the consumer's stop: after the grace the realtime
      // view stops, and such batches end unacked, to come again.
      const grace = new AbortController();
      await Promise.race([consumed, sleep(STOP_GRACE_MS, grace.signal)]);
      grace.abort();
      await Promise.all([revisor.stop(), realtime.stop(), capped.stop()]);
      await consumed;
      await store.close();
    },
  };
}
