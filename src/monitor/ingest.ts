import type { ClickHouseClient } from '@clickhouse/client';
import type { JsMsg } from '@nats-io/jetstream';
import type { ReportConfig } from '../core/config.ts';
import { decodeEvents, type TidemarkEvent } from '../core/envelope.ts';
import { FIELD_LIMITS, overBytes } from '../core/field-limits.ts';
import type { Logger } from 'pino';
import type { BatchHandler } from '../nats/batch-consumer.ts';
import { initialDaily, markDaily, type DailyState } from './daily.ts';
import { applyLateBatch, emptyDelayed, type DelayedState, type SequencedLateEvent } from './delayed.ts';
import { firstSeenEvery, initialEvery, markEvery, type EveryState } from './every.ts';
import type { Alert } from './alerts.ts';
import type { MonitorMetrics } from './metrics.ts';
import { firstRevisionTimes } from './report-status.ts';
import { seqRanges } from '../nats/seq-ranges.ts';
import { businessDay, dailyDeadline, firstDayDueAfter, previousDay, slotStart } from './schedule.ts';
import type { Sla } from './sla.ts';
import type { SliceAccumulator } from './slices.ts';
import { cappedKey, emptyCapped, noteCut, type CappedState, type Cut } from './capped.ts';
import { feed } from './idle.ts';
import { capOnSyncedView } from './source-cap.ts';
import { stateKey, type MonitorState } from './state.ts';

export type IngestDeps = {
  match: (source: string, type: string) => Sla[];
  reports: ReportConfig[];
  state: MonitorState;
  clickhouse: ClickHouseClient;
  db: string;
  slices: SliceAccumulator;
  metrics: MonitorMetrics;
  /** the latest ack floor the tick has read */
  ackFloor: () => number;
  /** when the first monitor started: a named (literal) source is expected from then, not from its first event */
  epoch: number;
  /** sources one glob SLA keeps state for, at most (monitor.maxSourcesPerSla) */
  maxSources: number;
  /** the idle expiry of an SLA's sources (idleExpiryOf): how often a source's lastAt stamp is refreshed follows from it */
  idleExpiry: (sla: Sla) => number;
  /** publishes a state document's outbox now (CardinalityCapped does not wait for the tick) */
  raise: (key: string, outbox: readonly Alert[]) => Promise<void>;
  logger: Logger;
};

type Marks<K> = { sla: Sla; source: string; arrivals: Map<K, number> };

const latestArrival = (arrivals: Map<unknown, number>): number => Math.max(...arrivals.values());

function mark<K>(marks: Map<string, Marks<K>>, key: string, sla: Sla, source: string, at: K, receivedAt: number): void {
  let entry = marks.get(key);
  if (!entry) marks.set(key, (entry = { sla, source, arrivals: new Map() }));
  const known = entry.arrivals.get(at);
  if (known === undefined || receivedAt < known) entry.arrivals.set(at, receivedAt);
}

const minArrival = (arrivals: Map<unknown, number>): number => Math.min(...arrivals.values());

/** The state keys an event asks a glob SLA for: a named source is configured, not chosen by senders, so only these are capped. */
function cappedKeys(sla: Sla, event: TidemarkEvent): string[] {
  if (sla.literalSource !== null) return [];
  const keys: string[] = [];
  if (sla.maxDelay !== undefined && event.receivedAt - event.occurredAt > sla.maxDelay) keys.push(stateKey('d', sla.id, event.source));
  if (sla.every) keys.push(stateKey('e', sla.id, event.source));
  if (sla.dailyBy) keys.push(stateKey('y', sla.id, event.source));
  return keys;
}

const MAX_CACHED_REVISIONS = 50_000;

// anyone may publish on events.>: a source past the gateway's limit would make a KV key nats-server refuses
const isEvent = (event: TidemarkEvent): boolean =>
  Number.isFinite(event.occurredAt) && Number.isFinite(event.receivedAt) && typeof event.source === 'string' && typeof event.type === 'string' && overBytes(event.source, FIELD_LIMITS.source) === undefined;

/** The processor sends undecodable messages to the DLQ; here they are simply not events. */
function eventsOf(msg: JsMsg): TidemarkEvent[] {
  try {
    return decodeEvents(msg.data).filter(isEvent);
  } catch {
    return [];
  }
}

/**
 * The EVENTS half of the monitor: checks each event against its SLAs and merges what
 * it found into the shared state (late aggregates, arrival marks), then acks. Alerts
 * that depend on every instance's share are raised by the tick once all are merged;
 * CardinalityCapped depends only on this batch, so it goes out as soon as its state
 * (and outbox) is written rather than at the next tick.
 */
export function createEventHandler(deps: IngestDeps): BatchHandler {
  const { state, reports } = deps;
  // a day's first revision time does not change once it exists, so hits are kept
  const firstRevision = new Map<string, number>();

  const revisedLookup = async (pairs: Array<{ report: string; day: string }>): Promise<Map<string, number>> => {
    const missing = pairs.filter((p) => !firstRevision.has(`${p.report}/${p.day}`));
    if (missing.length) {
      if (firstRevision.size > MAX_CACHED_REVISIONS) firstRevision.clear();
      for (const [key, at] of await firstRevisionTimes(deps.clickhouse, deps.db, missing)) firstRevision.set(key, at);
    }
    return firstRevision;
  };

  const reportDaysOf = (event: TidemarkEvent): string[] =>
    reports.filter((r) => r.types.includes(event.type)).map((r) => `${r.name}/${businessDay(event.occurredAt, r.timeZone)}`);

  return async (delivered: JsMsg[]) => {
    // a batch can hold two deliveries of one message (a copy redelivered after ackWait queued
    // beside the first, measured after a kill -9 on the cluster: seq 400 three times, 2 late
    // events counted twice): each sequence is merged once, every copy acked
    const msgs = [...new Map(delivered.map((m) => [m.seq, m])).values()];
    const decoded = msgs.map((msg) => ({ msg, events: eventsOf(msg) }));
    const asked = decoded.flatMap(({ events }) => events.flatMap((event) => deps.match(event.source, event.type).flatMap((sla) => cappedKeys(sla, event))));
    const cap = await capOnSyncedView(state, asked, deps.maxSources);
    const cuts = new Map<string, Cut>();
    const admits = (sla: Sla, key: string, event: TidemarkEvent): boolean => {
      if (sla.literalSource !== null || cap.admits(key)) return true;
      const first = cuts.get(sla.id);
      if (!first || event.receivedAt < first.receivedAt) cuts.set(sla.id, { sla: sla.id, limit: deps.maxSources, receivedAt: event.receivedAt, source: event.source });
      return false;
    };
    const late = new Map<string, SequencedLateEvent[]>();
    const every = new Map<string, Marks<number>>();
    const daily = new Map<string, Marks<string>>();
    const observed: Array<[string, number, number, boolean]> = [];
    for (const { msg, events: batchEvents } of decoded) {
      for (const event of batchEvents) {
        const delayMs = event.receivedAt - event.occurredAt;
        let isLate = false;
        for (const sla of deps.match(event.source, event.type)) {
          if (sla.maxDelay !== undefined && delayMs > sla.maxDelay) {
            isLate = true;
            const key = stateKey('d', sla.id, event.source);
            if (!admits(sla, key, event)) continue;
            let events = late.get(key);
            if (!events) late.set(key, (events = []));
            events.push({
              seq: msg.seq,
              receivedAt: event.receivedAt,
              delayMs,
              day: businessDay(event.occurredAt, sla.timeZone),
              reportDays: reportDaysOf(event),
              revisedDays: [],
            });
          }
          const everyKey = sla.every ? stateKey('e', sla.id, event.source) : undefined;
          if (everyKey && admits(sla, everyKey, event)) mark(every, everyKey, sla, event.source, slotStart(event.receivedAt, sla.every!), event.receivedAt);
          const dailyKey = sla.dailyBy ? stateKey('y', sla.id, event.source) : undefined;
          if (dailyKey && admits(sla, dailyKey, event)) mark(daily, dailyKey, sla, event.source, businessDay(event.occurredAt, sla.timeZone), event.receivedAt);
        }
        observed.push([event.source, event.receivedAt, delayMs, isLate]);
      }
    }

    const pairs = new Map<string, { report: string; day: string }>();
    for (const events of late.values()) {
      for (const rd of events.flatMap((e) => e.reportDays)) {
        const [report, day] = rd.split('/') as [string, string];
        pairs.set(rd, { report, day });
      }
    }
    const revisions = await revisedLookup([...pairs.values()]);

    const batch = seqRanges(msgs.map((m) => m.seq));
    const ackFloor = deps.ackFloor();
    const writes: Array<Promise<unknown>> = [];
    for (const [key, events] of late) {
      for (const e of events) e.revisedDays = e.reportDays.filter((rd) => (revisions.get(rd) ?? Number.POSITIVE_INFINITY) < e.receivedAt);
      const latest = Math.max(...events.map((e) => e.receivedAt));
      // a state with fresh late events is written anyway: its stamp goes along
      writes.push(state.mutate<DelayedState>(key, emptyDelayed, (s) => {
        const next = applyLateBatch(s, events, batch, ackFloor);
        return next && { ...next, lastAt: Math.max(latest, s.lastAt ?? latest) };
      }));
    }
    for (const [key, { sla, arrivals }] of every) {
      const latest = latestArrival(arrivals);
      const change = (s: EveryState) => feed(s, markEvery(s, arrivals), latest, deps.idleExpiry(sla));
      // most batches only repeat arrivals the state already holds: skip the round trip
      const known = state.entries.get(key)?.value as EveryState | undefined;
      if (known && change(known) === null) continue;
      const init = () => (sla.literalSource === null ? firstSeenEvery(minArrival(arrivals), sla.every!) : initialEvery(deps.epoch, sla.every!));
      writes.push(state.mutate<EveryState>(key, init, change));
    }
    for (const [key, { sla, arrivals }] of daily) {
      const latest = latestArrival(arrivals);
      const change = (s: DailyState) => feed(s, markDaily(s, arrivals), latest, deps.idleExpiry(sla));
      const known = state.entries.get(key)?.value as DailyState | undefined;
      if (known && change(known) === null) continue;
      const deadlineOf = (day: string) => dailyDeadline(day, sla.dailyBy!, sla.timeZone);
      const since = sla.literalSource === null ? minArrival(arrivals) : deps.epoch;
      writes.push(state.mutate<DailyState>(key, () => initialDaily(previousDay(firstDayDueAfter(since, sla.timeZone, deadlineOf))), change));
    }
    const capped: Array<[string, readonly Alert[]]> = [];
    for (const [sla, cut] of cuts) {
      const key = cappedKey(sla);
      const known = state.entries.get(key)?.value as CappedState | undefined;
      if (known && noteCut(known, cut) === null) continue;
      writes.push(state.mutate<CappedState>(key, emptyCapped, (s) => noteCut(s, cut)).then((written) => {
        if (written?.outbox.length) capped.push([key, written.outbox]);
      }));
    }
    // every write settles before the batch fails: the next batch's cap must see what this one wrote
    const failed = (await Promise.allSettled(writes)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    for (const msg of delivered) msg.ack();
    for (const [prefix, count] of cap.cut) {
      deps.metrics.sourcesCut(prefix, count);
      deps.logger.warn({ state: prefix, events: count, limit: deps.maxSources }, 'SLA source limit reached: events of further sources are stored and reported, but not checked against this SLA');
    }
    // only once the batch is through, so a failed batch that comes back is not counted twice
    for (const [source, receivedAt, delayMs, isLate] of observed) deps.slices.add(source, receivedAt, delayMs, isLate);
    deps.metrics.events(observed.length);
    // the outbox is in KV: if this publish fails, the next tick sends it
    for (const [key, outbox] of capped) await deps.raise(key, outbox).catch((err: unknown) => deps.logger.warn({ err, key }, 'CardinalityCapped not published yet; the next tick retries'));
  };
}
