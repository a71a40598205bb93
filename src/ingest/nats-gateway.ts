import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from '../core/config.ts';
import { parseRawEvent, type EnvelopeLimits, type ParseResult, type Rejection, type TidemarkEvent } from '../core/envelope.ts';
import { RecentIds } from '../core/recent-ids.ts';
import { ingestMetrics } from '../core/metrics.ts';
import { delivery, headerRecord, runBatchConsumer, storedAtMs, type RunningConsumer } from '../nats/batch-consumer.ts';
import { createBatchPublisher, type BatchPublisher, type PublishItem, type PublishOutcome } from '../nats/batch-publisher.ts';
import { CONSUMERS, STREAMS } from '../nats/topology.ts';
import { dlqItem, dlqRecord } from './dlq.ts';
import { packBatch, type PackLimits } from './event-packs.ts';

export type GatewayStats = { accepted: number; rejected: number; duplicates: number };

export function envelopeLimits(config: Config): EnvelopeLimits {
  return { maxEventBytes: config.ingest.maxEventBytes, maxFutureSkew: config.ingest.maxFutureSkew, retention: config.ingest.retention };
}

/** A pack stays well under the server's largest message (1 MiB unless configured otherwise). */
export function packLimits(config: Config, maxPayload: number): PackLimits {
  return { eventsPerMessage: config.ingest.eventsPerMessage, maxBytes: Math.min(512 * 1024, Math.floor(maxPayload / 2)) };
}

function parseMsg(msg: JsMsg, limits: EnvelopeLimits): ParseResult {
  const { seq, storedAtMs } = delivery(msg);
  return parseRawEvent(msg.data, {
    subject: msg.subject,
    msgId: msg.headers?.get('Nats-Msg-Id') || undefined,
    stream: STREAMS.ingest.name,
    seq,
    receivedAt: storedAtMs,
  }, limits);
}

function rejectionItem(msg: JsMsg, rejection: Rejection): PublishItem {
  const record = dlqRecord(rejection, msg.data, msg.subject, headerRecord(msg), { stream: STREAMS.ingest.name, seq: msg.seq }, storedAtMs(msg));
  return dlqItem(record, `${STREAMS.ingest.name}-${msg.seq}`);
}

/**
 * Where each output of a batch goes: a pack of valid events (members), with the inputs
 * that were copies of its events (acked with it), or one rejected input's DLQ record.
 */
type Output = { item: PublishItem; members: number[]; copies: number[]; events: number };

/** Copies of events another batch holds: acked once that batch's pack is stored. */
type AwaitedCopy = { index: number; stored: Promise<boolean> };

type Plan = { outputs: Output[]; storedCopies: number[]; awaitedCopies: AwaitedCopy[] };

/**
 * The event ids this gateway stored recently, and those on their way: a copy of one is
 * not sent again, so EVENTS holds each event once however the copies were batched.
 */
export type SeenIds = { recent: RecentIds; inflight: Map<string, Promise<boolean>> };

export const seenIds = (capacity: number): SeenIds => ({ recent: new RecentIds(capacity), inflight: new Map() });

function plan(msgs: JsMsg[], results: ParseResult[], limits: PackLimits, seen: SeenIds): Plan {
  const firstOf = new Map<string, number>();
  const copiesOf = new Map<number, number[]>();
  const storedCopies: number[] = [];
  const awaitedCopies: AwaitedCopy[] = [];
  const fresh = results.map((result, index) => {
    if (!result.ok) return undefined;
    const { id } = result.event;
    const first = firstOf.get(id);
    const inflight = seen.inflight.get(id);
    if (first !== undefined) copiesOf.set(first, [...(copiesOf.get(first) ?? []), index]);
    else if (seen.recent.has(id)) storedCopies.push(index);
    else if (inflight) awaitedCopies.push({ index, stored: inflight });
    else {
      firstOf.set(id, index);
      return result.event;
    }
    return undefined;
  });
  const outputs: Output[] = packBatch(fresh, limits).map((pack) => ({
    ...pack,
    copies: pack.members.flatMap((i) => copiesOf.get(i) ?? []),
    events: pack.members.length,
  }));
  results.forEach((result, i) => {
    if (!result.ok) outputs.push({ item: rejectionItem(msgs[i]!, result.rejection), members: [i], copies: [], events: 0 });
  });
  return { outputs, storedCopies, awaitedCopies };
}

const eventOf = (result: ParseResult | undefined): TidemarkEvent => (result as Extract<ParseResult, { ok: true }>).event;

/** Marks a pack's events as on their way; the returned function settles them with the pack's outcome. */
function announce(seen: SeenIds, ids: string[]): (stored: boolean) => void {
  let settle!: (stored: boolean) => void;
  const promise = new Promise<boolean>((resolve) => (settle = resolve));
  for (const id of ids) seen.inflight.set(id, promise);
  return (stored) => {
    for (const id of ids) {
      if (seen.inflight.get(id) === promise) seen.inflight.delete(id);
      if (stored) seen.recent.add(id);
    }
    settle(stored);
  };
}

/**
 * Validates one batch of raw messages and forwards the valid events to EVENTS, packed
 * by subject, and each rejected one to the DLQ. A raw message is acked only after
 * JetStream acked the output holding it (or holding the event it copies), so a crash
 * at any point means redelivery; message ids (the event id for a lone event, the
 * member sequences for a pack) make a redelivered batch's outputs collapse into those
 * already stored. Copies of an event this gateway stored recently are dropped here;
 * consumers of EVENTS count an event id once whatever copies still reach them (from
 * another gateway, or much later).
 */
export function gatewayBatchHandler(publisher: BatchPublisher, limits: EnvelopeLimits, packing: PackLimits, seen: SeenIds, stats: GatewayStats, logger: Logger) {
  const duplicates = (n: number) => {
    stats.duplicates += n;
    ingestMetrics.events('nats', 'duplicate', n);
  };
  return async (msgs: JsMsg[]): Promise<void> => {
    const started = performance.now();
    const results = msgs.map((msg) => parseMsg(msg, limits));
    const { outputs, storedCopies, awaitedCopies } = plan(msgs, results, packing, seen);
    const settles = outputs.map((o) => (o.events ? announce(seen, o.members.map((i) => eventOf(results[i]).id)) : undefined));
    let outcomes: PublishOutcome[];
    try {
      outcomes = await publisher.publish(outputs.map((o) => o.item));
    } catch (err) {
      for (const settle of settles) settle?.(false);
      throw err;
    }
    // settled before any ack, so a batch waiting on these packs never waits on an ack that threw
    outcomes.forEach((outcome, o) => settles[o]?.(outcome.ok));
    let failures = 0;
    outcomes.forEach((outcome, o) => {
      const { members, copies, events } = outputs[o]!;
      if (!outcome.ok) {
        failures++;
        for (const i of [...members, ...copies]) msgs[i]!.nak(1_000);
        return;
      }
      for (const i of [...members, ...copies]) msgs[i]!.ack();
      if (events === 0) {
        const { rejection } = results[members[0]!] as Extract<ParseResult, { ok: false }>;
        stats.rejected++;
        ingestMetrics.rejected('nats', rejection.code);
        return;
      }
      if (copies.length) duplicates(copies.length);
      if (outcome.duplicate) return duplicates(events);
      stats.accepted += events;
      ingestMetrics.events('nats', 'accepted', events);
      for (const i of members) {
        const event = eventOf(results[i]);
        ingestMetrics.delay(event.receivedAt - event.occurredAt);
      }
    });
    for (const i of storedCopies) msgs[i]!.ack();
    if (storedCopies.length) duplicates(storedCopies.length);
    for (const { index, stored } of awaitedCopies) {
      if (await stored) {
        msgs[index]!.ack();
        duplicates(1);
      } else msgs[index]!.nak(1_000);
    }
    ingestMetrics.batch('nats', (performance.now() - started) / 1_000);
    if (failures) logger.warn({ failures, example: outcomes.find((o) => !o.ok) }, 'some outputs were not stored; their raw messages will be redelivered');
  };
}

export type NatsGateway = RunningConsumer & { stats: GatewayStats };

/** The ingest gateway over NATS: a durable pull consumer on INGEST shared by every gateway instance. */
export async function startNatsGateway(options: { js: JetStreamClient; nc: NatsConnection; config: Config; logger: Logger }): Promise<NatsGateway> {
  const stats: GatewayStats = { accepted: 0, rejected: 0, duplicates: 0 };
  const publisher = createBatchPublisher(options.nc);
  const running = await runBatchConsumer({
    js: options.js,
    stream: CONSUMERS.gateway.stream,
    durable: CONSUMERS.gateway.durable,
    batchSize: options.config.ingest.batchSize,
    handler: gatewayBatchHandler(
      publisher,
      envelopeLimits(options.config),
      packLimits(options.config, options.nc.info?.max_payload ?? 1024 * 1024),
      seenIds(options.config.ingest.recentIds),
      stats,
      options.logger,
    ),
    logger: options.logger,
    // while one batch waits for its PubAcks, the next is validated and published
    concurrency: 3,
    lingerMs: options.config.ingest.linger,
  });
  return {
    ...running,
    stats,
    stop: async () => {
      await running.stop();
      publisher.close();
    },
  };
}
