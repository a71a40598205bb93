import { alertId } from '../core/alert-kinds.ts';
import { formatMs, iso, type Alert, type DelayedEventAlert, type DelayedResolvedAlert } from './alerts.ts';
import { addDelay, mergeHistograms, percentile, type Histogram } from './histogram.ts';
import { inRanges, unionRanges, type SeqRange } from '../nats/seq-ranges.ts';

/**
 * Grouping of late events as Alertmanager groups alerts: one group per (DelayedEvent,
 * SLA, source). Its first alert goes out `groupWait` after its first late event was
 * received, with what is known then; while late events go on, an update with the new
 * counts at most every `groupInterval`; nothing new, nothing sent; no late event for
 * `resolveAfter` (judged on the watermark, so nothing late can still be on its way):
 * Resolved, and the next late event opens a new group. Aggregates merge commutatively
 * and associatively, so batches handled by any number of instances, in any order, add
 * up to the same counts.
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

/**
 * `fresh`: late events in no alert yet; `total`: every late event of the group.
 * `sent`: alerts raised so far (the next one's sequence is sent + 1); `sentAt`: the
 * clock when the last one was raised, which paces updates.
 */
export type DelayedGroup = { startedAt: number; sent: number; sentAt: number; total: LateAggregate; fresh: LateAggregate | null };

/**
 * `merged`: EVENTS sequence ranges whose late events are already in the group, kept
 * above the consumer's ack floor; `floor`: the highest ack floor ranges were pruned
 * at. A batch that is redelivered after a crash or a failed write (possibly cut
 * differently) adds only what is not in there, so counts stay exact rather than
 * at-least-once. A copy at or below `floor` is skipped outright: it was acked, so
 * merged, yet a copy delivered before that ack (a batch slower than ackWait during
 * an election) can still arrive after the floor passed it and its range was pruned.
 */
export type DelayedState = { group: DelayedGroup | null; merged: SeqRange[]; outbox: Alert[]; lastAt?: number; floor?: number };

export const emptyDelayed = (): DelayedState => ({ group: null, merged: [], outbox: [] });

export type SequencedLateEvent = LateEvent & { seq: number };

/**
 * Adds a batch's late events of one (SLA, source) to the shared state, skipping those
 * already merged; `batch` is every sequence of the batch, late or not.
 */
export function applyLateBatch(state: DelayedState, events: readonly SequencedLateEvent[], batch: readonly SeqRange[], ackFloor: number): DelayedState | null {
  const below = state.floor ?? 0;
  const fresh = events.filter((e) => e.seq > below && !inRanges(state.merged, e.seq));
  if (fresh.length === 0) return null;
  const agg = emptyAggregate();
  for (const event of fresh) addLateEvent(agg, event);
  // a document written before groups (per-bucket state) starts a group afresh
  const known = state.group ?? null;
  const group: DelayedGroup = known
    ? { ...known, total: mergeAggregates(known.total, agg), fresh: known.fresh ? mergeAggregates(known.fresh, agg) : agg }
    : { startedAt: agg.firstAt, sent: 0, sentAt: Number.NEGATIVE_INFINITY, total: agg, fresh: agg };
  const floor = Math.max(below, ackFloor);
  const merged = unionRanges(state.merged, batch).filter(([, to]) => to > floor);
  return { group, merged, outbox: state.outbox, floor };
}

export type DelayedContext = {
  sla: string;
  source: string;
  maxDelayMs: number;
  /** the monitor's clock: paces the first alert and the updates */
  now: number;
  /** every event received before this instant has been merged: resolution waits for it */
  watermark: number;
  groupWaitMs: number;
  groupIntervalMs: number;
  resolveAfterMs: number;
};

const p95Of = (agg: LateAggregate): number => Math.min(percentile(agg.hist, 0.95) ?? agg.worstMs, agg.worstMs);

function delayedAlert(ctx: DelayedContext, group: DelayedGroup, fresh: LateAggregate): DelayedEventAlert {
  const groupOf = { sla: ctx.sla, source: ctx.source, startedAt: group.startedAt };
  const groupId = alertId('DelayedEvent', groupOf);
  const sequence = group.sent + 1;
  const p95 = p95Of(fresh);
  const total = group.total;
  const news = sequence === 1 ? '' : ` more (${total.count} since ${iso(group.startedAt)}, worst ${formatMs(total.worstMs)})`;
  return {
    id: alertId('DelayedEvent', { ...groupOf, sequence }),
    kind: 'DelayedEvent',
    source: ctx.source,
    sla: ctx.sla,
    at: fresh.firstAt,
    maxDelayMs: ctx.maxDelayMs,
    group: groupId,
    sequence,
    ...(sequence > 1 ? { updates: alertId('DelayedEvent', { ...groupOf, sequence: sequence - 1 }) } : {}),
    groupStartedAt: group.startedAt,
    count: fresh.count,
    totalCount: total.count,
    worstDelayMs: fresh.worstMs,
    totalWorstDelayMs: total.worstMs,
    p95DelayMs: p95,
    firstReceivedAt: fresh.firstAt,
    lastReceivedAt: fresh.lastAt,
    days: fresh.days,
    reportDays: fresh.reportDays,
    revisedDays: fresh.revisedDays,
    changedPublished: fresh.changedPublished,
    message: `${fresh.count}${news} event(s) from ${ctx.source} exceeded the ${formatMs(ctx.maxDelayMs)} delay SLA (worst ${formatMs(fresh.worstMs)}, p95 ${formatMs(p95)})${fresh.changedPublished ? `; ${fresh.changedPublished} changed already published days` : ''}`,
  };
}

function resolvedGroup(ctx: DelayedContext, group: DelayedGroup): DelayedResolvedAlert {
  const groupId = alertId('DelayedEvent', { sla: ctx.sla, source: ctx.source, startedAt: group.startedAt });
  const at = group.total.lastAt + ctx.resolveAfterMs;
  return {
    id: alertId('Resolved', { resolves: groupId }),
    kind: 'Resolved',
    source: ctx.source,
    sla: ctx.sla,
    at,
    resolves: groupId,
    resolvedKind: 'DelayedEvent',
    alerts: group.sent,
    totalCount: group.total.count,
    worstDelayMs: group.total.worstMs,
    lastReceivedAt: group.total.lastAt,
    message: `no event from ${ctx.source} over the ${formatMs(ctx.maxDelayMs)} delay SLA since ${iso(group.total.lastAt)} (${group.total.count} late since ${iso(group.startedAt)}, worst ${formatMs(group.total.worstMs)})`,
  };
}

/** The group's next alert, if one is due: the first, an update, or its resolution; null when nothing is. */
export function fireDueGroup(state: DelayedState, ctx: DelayedContext): DelayedState | null {
  const group = state.group ?? null;
  if (!group) return null;
  const due = group.fresh !== null && (group.sent === 0 ? ctx.now >= group.startedAt + ctx.groupWaitMs : ctx.now >= group.sentAt + ctx.groupIntervalMs);
  if (due) {
    const alert = delayedAlert(ctx, group, group.fresh!);
    return { ...state, group: { ...group, sent: group.sent + 1, sentAt: ctx.now, fresh: null }, outbox: [...state.outbox, alert] };
  }
  if (group.fresh === null && group.sent > 0 && ctx.watermark >= group.total.lastAt + ctx.resolveAfterMs) {
    return { ...state, group: null, outbox: [...state.outbox, resolvedGroup(ctx, group)] };
  }
  return null;
}
