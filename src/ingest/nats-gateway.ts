import { jetstreamManager, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from '../core/config.ts';
import { parseRawEvent, type EnvelopeLimits, type ParseResult, type Rejection, type TidemarkEvent } from '../core/envelope.ts';
import { contentFingerprint, eventIdentity } from '../core/identity.ts';
import { RecentIds } from '../core/recent-ids.ts';
import { ingestMetrics } from '../core/metrics.ts';
import { AckFloor } from '../nats/ack-floor.ts';
import { runBatchConsumer, type RunningConsumer } from '../nats/batch-consumer.ts';
import { delivery, deliveryCount, headerRecord } from '../nats/js-msg.ts';
import { openLease } from '../nats/lease.ts';
import { instanceId } from '../core/instance.ts';
import { raceAbort, runLoop } from '../core/loop.ts';
import { createBatchPublisher, type BatchPublisher, type PublishItem, type PublishOutcome } from '../nats/batch-publisher.ts';
import { CONSUMERS, gatewayConsumerGone, rewindGatewayConsumer, STREAMS } from '../nats/topology.ts';
import { DEFAULT_MAX_PAYLOAD, dlqItem, dlqRecord } from '../nats/dlq.ts';
import { packBatch, type PackLimits } from './event-packs.ts';
import { INGEST_PACK_HEADER, packCount, unpackItems } from './ingest-packs.ts';
import { bucketReplicas } from '../nats/buckets.ts';
import { publishRetrying } from '../nats/retry.ts';
import { refillRecentIds } from './recent-refill.ts';

export type GatewayStats = { accepted: number; rejected: number; duplicates: number };

export function envelopeLimits(config: Config): EnvelopeLimits {
  return { maxEventBytes: config.ingest.maxEventBytes, maxFutureSkew: config.ingest.maxFutureSkew, retention: config.ingest.retention };
}

/** A pack stays well under the server's largest message (1 MiB unless configured otherwise). */
export function packLimits(config: Config, maxPayload: number): PackLimits {
  return { eventsPerMessage: config.ingest.eventsPerMessage, maxBytes: Math.min(512 * 1024, Math.floor(maxPayload / 2)) };
}

/**
 * One raw event: a whole message, or item `part` of a packed one (INGEST_PACK_HEADER).
 * `raw` is the position of its message in the batch; `seq` and `storedAt` its message's
 * stream sequence and store time, read from the reply subject once for all its items.
 */
type Input = { msg: JsMsg; raw: number; data: Uint8Array; seq: number; storedAt: number; part?: number; invalid?: Rejection };

/** The batch's raw events in stream order; a pack whose lines do not match its count is one invalid input. */
function inputsOf(msgs: JsMsg[]): Input[] {
  const inputs: Input[] = [];
  for (let raw = 0; raw < msgs.length; raw++) {
    const msg = msgs[raw]!;
    const { seq, storedAtMs: storedAt } = delivery(msg);
    const count = msg.headers === undefined ? undefined : packCount(msg.headers.get(INGEST_PACK_HEADER));
    if (count === undefined) {
      inputs.push({ msg, raw, data: msg.data, seq, storedAt });
      continue;
    }
    const lines = Number.isNaN(count) ? undefined : unpackItems(msg.data, count);
    if (!lines) {
      const invalid: Rejection = { code: 'INVALID_JSON', reason: `a packed message must hold as many lines as its ${INGEST_PACK_HEADER} header says (${msg.headers?.get(INGEST_PACK_HEADER)})` };
      inputs.push({ msg, raw, data: msg.data, seq, storedAt, invalid });
      continue;
    }
    lines.forEach((data, part) => inputs.push({ msg, raw, data, seq, storedAt, part }));
  }
  return inputs;
}

function parseInput(input: Input, limits: EnvelopeLimits): ParseResult {
  if (input.invalid) return { ok: false, rejection: input.invalid };
  const { msg, part } = input;
  return parseRawEvent(input.data, {
    subject: msg.subject,
    // a pack's message id names the pack, never one of its items
    msgId: part === undefined ? msg.headers?.get('Nats-Msg-Id') || undefined : undefined,
    stream: STREAMS.ingest.name,
    seq: input.seq,
    part,
    receivedAt: input.storedAt,
  }, limits);
}

const inputName = ({ msg, part }: Input): string => `${STREAMS.ingest.name}-${msg.seq}${part === undefined ? '' : `-${part}`}`;
const inputOrigin = ({ msg, part }: Input) => ({ stream: STREAMS.ingest.name, seq: msg.seq, ...(part === undefined ? {} : { part }) });

function rejectionItem(input: Input, rejection: Rejection, maxPayload: number): PublishItem {
  const { msg } = input;
  const record = dlqRecord(rejection, input.data, msg.subject, headerRecord(msg), inputOrigin(input), input.storedAt, maxPayload);
  return dlqItem(record, inputName(input));
}

/** The last resort for a DLQ record the client would not send: no headers, a short head of the bytes, a plain subject. */
function bareRejectionItem(input: Input, rejection: Rejection): PublishItem {
  const record = dlqRecord(rejection, input.data.subarray(0, 4096), '_.unpublishable', {}, inputOrigin(input), input.storedAt);
  return dlqItem(record, inputName(input));
}

/**
 * Where each output of a batch goes: a pack of valid events (members), with the inputs
 * that were copies of its events (acked with it), or one rejected input's DLQ record.
 */
type Output = { item: PublishItem; members: number[]; copies: number[]; events: number; rejection?: Rejection };

/** Copies of events another batch holds: acked once that batch's pack is stored. */
type AwaitedCopy = { index: number; stored: Promise<boolean> };

/**
 * `identities[i]`, `fingerprints[i]`, `delays[i]`: the identity, content fingerprint and
 * receivedAt − occurredAt of input i's event, for the inputs sent on. The parsed events
 * themselves are not kept: they die before the PubAcks come, young and cheap to collect.
 */
type Plan = { outputs: Output[]; storedCopies: number[]; awaitedCopies: AwaitedCopy[]; identities: string[]; fingerprints: number[]; delays: number[] };

/**
 * The event identities (source, id) this gateway stored recently, and those on their
 * way, each with a fingerprint of its content: a copy of one is not sent again, so
 * EVENTS holds each event once however the copies were batched, and a different event
 * under a known identity is told apart from a copy.
 */
export type SeenIds = { recent: RecentIds; inflight: Map<string, { stored: Promise<boolean>; fingerprint: number }> };

export const seenIds = (capacity: number): SeenIds => ({ recent: new RecentIds(capacity), inflight: new Map() });

function conflict(event: TidemarkEvent): Rejection {
  return {
    code: 'DUPLICATE_ID_CONFLICT',
    reason: `another event with source "${event.source}" and id "${event.id}" and different content was stored first; this copy is kept here, not counted`,
  };
}

/**
 * Parses a batch's inputs and sorts them: the first copy of each identity is sent (in stream order, so
 * the first stored copy wins); an exact copy of it, or of one stored or on its way, is
 * a silent duplicate; a copy with different content goes to the DLQ as a conflict.
 */
function plan(msgs: Input[], envelope: EnvelopeLimits, limits: PackLimits, seen: SeenIds, maxPayload: number): Plan {
  const results = msgs.map((input) => parseInput(input, envelope));
  /** the index of the first input of each identity in this batch */
  const firstOf = new Map<string, number>();
  const copiesOf = new Map<number, number[]>();
  const storedCopies: number[] = [];
  const awaitedCopies: AwaitedCopy[] = [];
  const conflicts: Array<{ index: number; rejection: Rejection }> = [];
  const identities: string[] = [];
  const fingerprints: number[] = [];
  const delays: number[] = [];
  const fresh: Array<TidemarkEvent | undefined> = new Array(results.length);
  for (let index = 0; index < results.length; index++) {
    const result = results[index]!;
    if (!result.ok) continue;
    const { event } = result;
    const identity = eventIdentity(event.source, event.id);
    const fingerprint = contentFingerprint(event);
    const first = firstOf.get(identity);
    const stored = first === undefined ? seen.recent.get(identity) : undefined;
    const inflight = first === undefined && stored === undefined ? seen.inflight.get(identity) : undefined;
    const known = first !== undefined ? fingerprints[first] : (stored ?? inflight?.fingerprint);
    if (known !== undefined && known !== fingerprint) conflicts.push({ index, rejection: conflict(event) });
    else if (first !== undefined) copiesOf.set(first, [...(copiesOf.get(first) ?? []), index]);
    else if (stored !== undefined) storedCopies.push(index);
    else if (inflight) awaitedCopies.push({ index, stored: inflight.stored });
    else {
      firstOf.set(identity, index);
      identities[index] = identity;
      fingerprints[index] = fingerprint;
      delays[index] = event.receivedAt - event.occurredAt;
      fresh[index] = event;
    }
  }
  const outputs: Output[] = packBatch(fresh, limits, msgs.map((input) => input.part)).map((pack) => ({
    ...pack,
    copies: pack.members.flatMap((i) => copiesOf.get(i) ?? []),
    events: pack.members.length,
  }));
  const rejected = (index: number, rejection: Rejection): Output => ({ item: rejectionItem(msgs[index]!, rejection, maxPayload), members: [index], copies: [], events: 0, rejection });
  results.forEach((result, i) => {
    if (!result.ok) outputs.push(rejected(i, result.rejection));
  });
  for (const { index, rejection } of conflicts) outputs.push(rejected(index, rejection));
  return { outputs, storedCopies, awaitedCopies, identities, fingerprints, delays };
}

/**
 * What replaces an output the NATS client refused to send (validation should leave
 * none, so this is a net, not a path): each input of a refused pack becomes a DLQ
 * record of its own, and a refused DLQ record a bare one. Retrying the same message
 * would fail the same way, and stall INGEST behind it.
 */
function fallbacks(msgs: Input[], output: Output, error: string, maxPayload: number): Output[] {
  const rejection: Rejection = { code: 'UNPUBLISHABLE', reason: `NATS would not take the message built from this input: ${error}` };
  if (output.events === 0) {
    const i = output.members[0]!;
    const original = output.rejection ?? rejection;
    const bare = { code: original.code, reason: `${original.reason} (the full DLQ record could not be sent: ${error})` };
    return [{ item: bareRejectionItem(msgs[i]!, bare), members: [i], copies: [], events: 0, rejection: bare }];
  }
  return [...output.members, ...output.copies].map((i) => ({ item: rejectionItem(msgs[i]!, rejection, maxPayload), members: [i], copies: [], events: 0, rejection }));
}

/**
 * Marks a pack's events (the inputs `members`, with their identities and fingerprints)
 * as on their way; the returned function settles them with the pack's outcome.
 */
function announce(seen: SeenIds, members: number[], identities: string[], fingerprints: number[]): (stored: boolean) => void {
  let settle!: (stored: boolean) => void;
  const stored = new Promise<boolean>((resolve) => (settle = resolve));
  for (const i of members) seen.inflight.set(identities[i]!, { stored, fingerprint: fingerprints[i]! });
  return (ok) => {
    for (const i of members) {
      const identity = identities[i]!;
      if (seen.inflight.get(identity)?.stored === stored) seen.inflight.delete(identity);
      if (ok) seen.recent.add(identity, fingerprints[i]!);
    }
    settle(ok);
  };
}

/**
 * Validates one batch of raw messages and forwards the valid events to EVENTS, packed
 * by subject, and each rejected one to the DLQ. A raw message is acked only after
 * JetStream acked the output holding it (or holding the event it copies), so a crash
 * at any point means redelivery; message ids (the event's (source, id) for a lone
 * event, the member sequences for a pack) make a redelivered batch's outputs collapse
 * into those already stored. Copies of an event this gateway stored recently are
 * dropped here, and a different event under a recent identity goes to the DLQ
 * (DUPLICATE_ID_CONFLICT); consumers of EVENTS count an identity once whatever copies
 * still reach them (from another gateway, or much later).
 */
export function gatewayBatchHandler(publisher: BatchPublisher, limits: EnvelopeLimits, packing: PackLimits, seen: SeenIds, stats: GatewayStats, logger: Logger, maxPayload = DEFAULT_MAX_PAYLOAD) {
  const duplicates = (n: number) => {
    stats.duplicates += n;
    ingestMetrics.events('nats', 'duplicate', n);
  };
  /** `done` is told of every raw message whose outputs are all stored, with its INGEST sequence; the others are nak'd. */
  return async (raws: JsMsg[], done: (msg: JsMsg, seq: number) => void): Promise<void> => {
    const started = performance.now();
    const msgs = inputsOf(raws);
    // a packed raw message is done once every one of its items is, and nak'd (once) if any is not
    const pending = new Array<number>(raws.length).fill(0);
    for (const input of msgs) pending[input.raw]!++;
    const naked = new Array<boolean>(raws.length).fill(false);
    const doneAt = (i: number) => {
      const { raw } = msgs[i]!;
      if (--pending[raw]! === 0 && !naked[raw]) done(raws[raw]!, msgs[i]!.seq);
    };
    const nakAt = (i: number) => {
      const { raw } = msgs[i]!;
      if (naked[raw]) return;
      naked[raw] = true;
      raws[raw]!.nak(1_000);
    };
    const { outputs, storedCopies, awaitedCopies, identities, fingerprints, delays } = plan(msgs, limits, packing, seen, maxPayload);
    const settles = outputs.map((o) => (o.events ? announce(seen, o.members, identities, fingerprints) : undefined));
    let outcomes: PublishOutcome[];
    try {
      // every output has a message id, so what no leader acknowledged during an election is sent again
      outcomes = await publishRetrying(publisher, outputs.map((o) => o.item));
    } catch (err) {
      for (const settle of settles) settle?.(false);
      throw err;
    }
    // settled before any ack, so a batch waiting on these packs never waits on an ack that threw
    outcomes.forEach((outcome, o) => settles[o]?.(outcome.ok));
    const refused = outputs.flatMap((output, o) => {
      const outcome = outcomes[o]!;
      return !outcome.ok && outcome.permanent ? fallbacks(msgs, output, outcome.error, maxPayload) : [];
    });
    if (refused.length) {
      logger.error({ refused: refused.length, example: outcomes.find((o) => !o.ok && o.permanent) }, 'NATS refused messages built from valid inputs; their inputs go to the DLQ');
      // DLQ records carry the raw message's id: sent again while the DLQ elects a leader
      const more = await publishRetrying(publisher, refused.map((o) => o.item));
      outputs.push(...refused);
      outcomes.push(...more);
    }
    let failures = 0;
    outcomes.forEach((outcome, o) => {
      const { members, copies, events } = outputs[o]!;
      // replaced by its fallbacks, which follow in this list
      if (!outcome.ok && outcome.permanent && o < outputs.length - refused.length) return;
      if (!outcome.ok) {
        failures++;
        for (const i of [...members, ...copies]) nakAt(i);
        return;
      }
      for (const i of [...members, ...copies]) doneAt(i);
      const { rejection } = outputs[o]!;
      if (rejection) {
        stats.rejected++;
        ingestMetrics.rejected('nats', rejection.code);
        return;
      }
      if (copies.length) duplicates(copies.length);
      if (outcome.duplicate) return duplicates(events);
      stats.accepted += events;
      ingestMetrics.events('nats', 'accepted', events);
      for (const i of members) ingestMetrics.delay(delays[i]!);
    });
    for (const i of storedCopies) doneAt(i);
    if (storedCopies.length) duplicates(storedCopies.length);
    for (const { index, stored } of awaitedCopies) {
      if (await stored) {
        doneAt(index);
        duplicates(1);
      } else nakAt(index);
    }
    ingestMetrics.batch('nats', (performance.now() - started) / 1_000);
    if (failures) logger.warn({ failures, example: outcomes.find((o) => !o.ok) }, 'some outputs were not stored; their raw messages will be redelivered');
  };
}

/** Bytes of raw messages pulled and not yet handled, now and at most so far (bounded by `ingest.readAheadBytes`). */
export type ReadAheadStats = { bytes: number; peakBytes: number };

export type NatsGateway = RunningConsumer & { stats: GatewayStats; readAhead: ReadAheadStats; active: () => boolean };

/** Room a pull must leave for one more message: the payload, plus its subject and reply, which the server counts too. */
const SUBJECT_ROOM = 8 * 1024;

/** The highest INGEST sequence this gateway acked, and the creation time of the INGEST it was read from. */
type FloorSeen = { seq: number; stream?: string };

/**
 * Reads INGEST while this instance holds the gateway lease, from the consumer's ack
 * floor: acks are cumulative, one a batch, moved only over sequences handled here.
 * A redelivered message (a nak, a message lost in transit, a batch slower than
 * ack_wait) ends the read, and the next starts the durable over at its floor, so acks
 * always go out in delivery order. Returns when the lease is lost, `until` is
 * aborted, a redelivery came or the durable was found gone, after the batches under
 * way; the next read makes a gone durable anew from `floorSeen`.
 */
async function readWhileHolding(options: { js: JetStreamClient; nc: NatsConnection; jsm: JetStreamManager; config: Config; logger: Logger; until: AbortSignal; handle: ReturnType<typeof gatewayBatchHandler>; readAhead: ReadAheadStats; floorSeen: FloorSeen }): Promise<void> {
  const { jsm, config, logger, readAhead, floorSeen } = options;
  const rewound = await rewindGatewayConsumer(jsm, config, floorSeen);
  if (floorSeen.stream !== rewound.stream) Object.assign(floorSeen, { seq: rewound.floor, stream: rewound.stream });
  const floor = new AckFloor<JsMsg>(rewound.floor);
  logger.info({ floor: floor.floor }, 'reading INGEST');
  const redelivered = new AbortController();
  const gone = new AbortController();
  const until = AbortSignal.any([options.until, redelivered.signal, gone.signal]);
  // asked only when a pull hints at it, one question at a time: a pull on a missing durable is answered by nothing, and reading on would forward nothing more until a restart
  let asking = false;
  const askGone = () => {
    if (asking || until.aborted) return;
    asking = true;
    gatewayConsumerGone(jsm)
      .then((isGone) => isGone && gone.abort(), (err: unknown) => logger.warn({ err }, 'checking whether the INGEST durable still exists failed'))
      .finally(() => (asking = false));
  };
  const running = await runBatchConsumer({
    js: options.js,
    stream: CONSUMERS.gateway.stream,
    durable: CONSUMERS.gateway.durable,
    batchSize: config.ingest.batchSize,
    // a packed HTTP request counts for its items, so a batch stays about batchSize events
    weight: (msg) => packCount(msg.headers?.get(INGEST_PACK_HEADER)) || 1,
    handler: async (msgs) => {
      // whatever is left unhandled here comes again from the floor
      if (until.aborted) return;
      if (msgs.some((msg) => deliveryCount(msg) > 1)) return redelivered.abort();
      await options.handle(msgs, (msg, seq) => floor.add(seq, msg));
      floor.advance()?.ack();
      floorSeen.seq = Math.max(floorSeen.seq, floor.floor);
    },
    logger,
    // while one batch waits for its PubAcks, the next is validated and published
    concurrency: 3,
    lingerMs: config.ingest.linger,
    readAhead: {
      nc: options.nc,
      maxBytes: config.ingest.readAheadBytes,
      maxMessageBytes: (options.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD) + SUBJECT_ROOM,
      onHeld: (bytes) => {
        readAhead.bytes = bytes;
        readAhead.peakBytes = Math.max(readAhead.peakBytes, bytes);
        ingestMetrics.readAhead(bytes);
      },
      onMaybeGone: askGone,
    },
  });
  // a sequence that stays missing past redelivery was removed from the stream (by age or by hand)
  const sweep = setInterval(() => void skipRemoved(jsm, floor).catch((err: unknown) => logger.warn({ err }, 'checking INGEST for removed messages failed')), 2 * config.nats.ackWait);
  await new Promise<void>((resolve) => {
    if (until.aborted) return resolve();
    until.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(sweep);
  await running.stop();
  if (redelivered.signal.aborted) logger.info({ floor: floor.floor }, 'a message came again: reading INGEST anew from the floor');
  if (gone.signal.aborted) logger.warn({ floor: floorSeen.seq }, 'the INGEST durable is gone: making it anew from the floor acked here');
}

async function skipRemoved(jsm: JetStreamManager, floor: AckFloor<JsMsg>): Promise<void> {
  if (floor.waiting === 0) return;
  const missing = floor.missing;
  const info = await jsm.streams.info(CONSUMERS.gateway.stream, { deleted_details: true });
  const deleted = new Set(info.state.deleted ?? []);
  if (floor.missing !== missing) return;
  floor.skip((seq) => seq < info.state.first_seq || deleted.has(seq));
  floor.advance()?.ack();
}

/** How long a new lease holder may spend reading EVENTS' tail before it reads INGEST with what it has. */
const REFILL_BUDGET_MS = 5_000;
/** Gets in flight while refilling: one at a time, 20,000 lone events would take seconds of round trips. */
const REFILL_WINDOW = 64;

/**
 * Refills the recent ids from the tail of EVENTS. The memory is per process: without
 * this, a gateway that takes the lease over (or restarts) forwards copies of events
 * the last holder had just stored, and the realtime view, whose own recent ids are per
 * processor, may count them twice.
 */
async function refill(jsm: JetStreamManager, seen: SeenIds, config: Config, logger: Logger, stop: AbortSignal): Promise<void> {
  const outcome = await refillRecentIds(jsm, seen.recent, { capacity: config.ingest.recentIds, budgetMs: REFILL_BUDGET_MS, window: REFILL_WINDOW, stop });
  const { error, ...counts } = outcome;
  if (outcome.complete) logger.info(counts, 'recent ids refilled from EVENTS');
  else if (!stop.aborted) logger.warn({ ...counts, err: error }, 'recent ids only partly refilled from EVENTS: copies of older events may be forwarded again (counted once in the daily view)');
}

/**
 * The ingest gateway over NATS: reads INGEST through its durable while it holds the
 * gateway lease; further instances are standbys that take over when the active one
 * stops or dies (after `ingest.lease`). One reader acks a batch at once; readers
 * sharing the durable would each have to ack every raw message.
 */
export async function startNatsGateway(options: { js: JetStreamClient; nc: NatsConnection; config: Config; logger: Logger }): Promise<NatsGateway> {
  const { js, nc, config, logger } = options;
  const stats: GatewayStats = { accepted: 0, rejected: 0, duplicates: 0 };
  const readAhead: ReadAheadStats = { bytes: 0, peakBytes: 0 };
  const publisher = createBatchPublisher(nc);
  const jsm = await jetstreamManager(nc);
  const seen = seenIds(config.ingest.recentIds);
  const handle = gatewayBatchHandler(
    publisher,
    envelopeLimits(config),
    packLimits(config, nc.info?.max_payload ?? 1024 * 1024),
    seen,
    stats,
    logger,
    nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD,
  );
  const lease = await openLease(js, { key: 'gateway', holder: instanceId(), ttlMs: config.ingest.lease, replicas: bucketReplicas(config, 'leases') });
  /** whether the recent ids were refilled from EVENTS since this instance last took the lease */
  let refilled = false;
  /** the highest INGEST floor this instance acked: where its durable starts again if it is found gone */
  const floorSeen: FloorSeen = { seq: 0 };
  const loop = runLoop({
    name: 'reading INGEST',
    everyMs: 0,
    retryMs: 1_000,
    logger,
    step: async (stopping) => {
      await raceAbort(lease.acquired(), stopping);
      if (stopping.aborted) return;
      try {
        if (!refilled) {
          await refill(jsm, seen, config, logger, stopping);
          refilled = true;
        }
        await readWhileHolding({ js, nc, jsm, config, logger, handle, readAhead, floorSeen, until: AbortSignal.any([lease.signal(), stopping]) });
      } finally {
        if (!lease.held()) {
          refilled = false;
          if (!stopping.aborted) logger.warn('gateway lease lost: standing by');
        }
      }
    },
  });
  return {
    stats,
    readAhead,
    done: loop.done,
    active: () => lease.held(),
    stop: async () => {
      await loop.stop();
      await lease.release();
      publisher.close();
    },
  };
}
