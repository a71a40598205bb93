import { delayedId, formatMs, iso, type Alert, type DelayedEventAlert } from './alerts.ts';
import { addDelay, mergeHistograms, percentile, type Histogram } from './histogram.ts';
import { inRanges, unionRanges, type SeqRange } from './seq-ranges.ts';

/**
 * Coalescing of late events: one aggregate per (SLA, source, bucket of receivedAt).
 * Aggregates merge commutatively and associatively, so batches handled by any number
 * of instances, in any order, add up to the same alert.
 */
export type LateAggregate = {
  count: number;
  worstMs: number;
  hist: Histogram;
  firstAt: number;
  lastAt: number;
  days: string[];
  reportDays: string[];
  revisedDays: string[];
  changedPublished: number;
};

export type LateEvent = {
  receivedAt: number;
  delayMs: number;
  /** business day of occurredAt in the SLA's time zone */
  day: string;
  reportDays: string[];
  revisedDays: string[];
};

/** Lists in an alert keep their smallest entries: "the k smallest" merges exactly, so the cap costs no consistency. */
export const MAX_LISTED = 100;

function addCapped(list: string[], value: string): void {
  if (list.length >= MAX_LISTED && value >= list.at(-1)!) return;
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  if (list[lo] === value) return;
  list.splice(lo, 0, value);
  if (list.length > MAX_LISTED) list.pop();
}

const unionCapped = (a: string[], b: string[]): string[] => {
  const out = [...a];
  for (const value of b) addCapped(out, value);
  return out;
};

const emptyAggregate = (): LateAggregate => ({
  count: 0,
  worstMs: Number.NEGATIVE_INFINITY,
  hist: {},
  firstAt: Number.POSITIVE_INFINITY,
  lastAt: Number.NEGATIVE_INFINITY,
  days: [],
  reportDays: [],
  revisedDays: [],
  changedPublished: 0,
});

/** Folds one late event into an aggregate in place (the hot path: no copies per event). */
function addLateEvent(agg: LateAggregate, event: LateEvent): void {
  agg.count++;
  agg.worstMs = Math.max(agg.worstMs, event.delayMs);
  addDelay(agg.hist, event.delayMs);
  agg.firstAt = Math.min(agg.firstAt, event.receivedAt);
  agg.lastAt = Math.max(agg.lastAt, event.receivedAt);
  addCapped(agg.days, event.day);
  for (const rd of event.reportDays) addCapped(agg.reportDays, rd);
  for (const rd of event.revisedDays) addCapped(agg.revisedDays, rd);
  if (event.revisedDays.length > 0) agg.changedPublished++;
}

function mergeAggregates(a: LateAggregate, b: LateAggregate): LateAggregate {
  return {
    count: a.count + b.count,
    worstMs: Math.max(a.worstMs, b.worstMs),
    hist: mergeHistograms(a.hist, b.hist),
    firstAt: Math.min(a.firstAt, b.firstAt),
    lastAt: Math.max(a.lastAt, b.lastAt),
    days: unionCapped(a.days, b.days),
    reportDays: unionCapped(a.reportDays, b.reportDays),
    revisedDays: unionCapped(a.revisedDays, b.revisedDays),
    changedPublished: a.changedPublished + b.changedPublished,
  };
}

/** `gen`: alerts already raised for the bucket; `agg`: late events not alerted yet. */
export type BucketEntry = { agg: LateAggregate | null; gen: number };

/**
 * `merged`: EVENTS sequence ranges whose late events are already in `buckets`, kept
 * above the consumer's ack floor (below it nothing is ever redelivered). A batch that
 * is redelivered after a crash or a failed write (possibly cut differently) adds only
 * what is not in there, so counts stay exact rather than at-least-once.
 */
export type DelayedState = { buckets: Record<string, BucketEntry>; merged: SeqRange[]; outbox: Alert[]; lastAt?: number };

export const emptyDelayed = (): DelayedState => ({ buckets: {}, merged: [], outbox: [] });

export const bucketStart = (receivedAt: number, bucketMs: number): number => Math.floor(receivedAt / bucketMs) * bucketMs;

export type SequencedLateEvent = LateEvent & { seq: number; bucket: number };

/**
 * Adds a batch's late events of one (SLA, source) to the shared state, skipping those
 * already merged; `batch` is every sequence of the batch, late or not.
 */
export function applyLateBatch(state: DelayedState, events: readonly SequencedLateEvent[], batch: readonly SeqRange[], ackFloor: number): DelayedState | null {
  const fresh = events.filter((e) => !inRanges(state.merged, e.seq));
  if (fresh.length === 0) return null;
  const aggregates = new Map<number, LateAggregate>();
  for (const event of fresh) {
    let agg = aggregates.get(event.bucket);
    if (!agg) aggregates.set(event.bucket, (agg = emptyAggregate()));
    addLateEvent(agg, event);
  }
  const buckets = { ...state.buckets };
  for (const [start, agg] of aggregates) {
    const entry = buckets[start] ?? { agg: null, gen: 0 };
    buckets[start] = { gen: entry.gen, agg: entry.agg ? mergeAggregates(entry.agg, agg) : agg };
  }
  const merged = unionRanges(state.merged, batch).filter(([, to]) => to > ackFloor);
  return { ...state, buckets, merged };
}

export type DelayedContext = {
  sla: string;
  source: string;
  maxDelayMs: number;
  bucketMs: number;
  /** every event received before this instant has been merged */
  watermark: number;
  /** how long an alerted bucket is remembered, so stragglers get a follow-up instead of a clashing id */
  stragglersMs: number;
};

function delayedAlert(ctx: DelayedContext, start: number, agg: LateAggregate, generation: number): DelayedEventAlert {
  const end = start + ctx.bucketMs;
  const p95 = Math.min(percentile(agg.hist, 0.95) ?? agg.worstMs, agg.worstMs);
  return {
    id: delayedId(ctx.sla, ctx.source, start, generation),
    kind: 'DelayedEvent',
    source: ctx.source,
    sla: ctx.sla,
    at: end,
    maxDelayMs: ctx.maxDelayMs,
    bucketStart: start,
    bucketEnd: end,
    generation,
    count: agg.count,
    worstDelayMs: agg.worstMs,
    p95DelayMs: p95,
    firstReceivedAt: agg.firstAt,
    lastReceivedAt: agg.lastAt,
    days: agg.days,
    reportDays: agg.reportDays,
    revisedDays: agg.revisedDays,
    changedPublished: agg.changedPublished,
    message: `${agg.count} event(s) from ${ctx.source} received ${iso(start)}..${iso(end)} exceeded the ${formatMs(ctx.maxDelayMs)} delay SLA (worst ${formatMs(agg.worstMs)}, p95 ${formatMs(p95)})${agg.changedPublished ? `; ${agg.changedPublished} changed already published days` : ''}`,
  };
}

/** Moves every complete bucket's aggregate into an alert in the outbox; null when nothing is due. */
export function fireDueBuckets(state: DelayedState, ctx: DelayedContext): DelayedState | null {
  const buckets: Record<string, BucketEntry> = {};
  const outbox = [...state.outbox];
  let changed = false;
  for (const [key, entry] of Object.entries(state.buckets)) {
    const start = Number(key);
    const end = start + ctx.bucketMs;
    if (entry.agg && end <= ctx.watermark) {
      outbox.push(delayedAlert(ctx, start, entry.agg, entry.gen + 1));
      buckets[key] = { agg: null, gen: entry.gen + 1 };
      changed = true;
    } else if (!entry.agg && end < ctx.watermark - ctx.stragglersMs) {
      changed = true;
    } else {
      buckets[key] = entry;
    }
  }
  return changed ? { ...state, buckets, outbox } : null;
}
