import { alertId } from '../core/alert-kinds.ts';
import { resolvedAlert, formatMs, iso, type Alert, type MissingDataAlert } from './alerts.ts';
import { slotStart } from './schedule.ts';

/**
 * "At least one event every N": time is cut into N-long intervals aligned to the epoch,
 * and each complete interval must hold an event (by receivedAt). A run of empty
 * intervals is one outage: one MissingData when it starts, one Resolved when data
 * returns. This is stricter than nothing and looser than "no gap longer than N": two
 * events 1.9 N apart in adjacent intervals pass.
 *
 * `checked`: start of the last interval judged. `seen`: first arrival per interval
 * not judged yet. Marks only add and the cursor only moves forward, so the state
 * merges the same whichever instance writes first.
 */
export type EveryState = {
  checked: number;
  seen: Record<string, number>;
  gap: { id: string; windowStart: number; expectedBy: number } | null;
  outbox: Alert[];
  /** the latest receivedAt of the source's events, refreshed now and then (idle.ts) */
  lastAt?: number;
};

/** Checks start after the interval holding `since`: a partly watched interval is never judged. */
export const initialEvery = (since: number, every: number): EveryState => ({ checked: slotStart(since, every), seen: {}, gap: null, outbox: [] });

/** A source first seen at `t` is judged from `t`'s own interval on. */
export const firstSeenEvery = (t: number, every: number): EveryState => ({ checked: slotStart(t, every) - every, seen: {}, gap: null, outbox: [] });

/** Records arrivals (interval start → earliest receivedAt); null when the state already knows them. */
export function markEvery(state: EveryState, arrivals: ReadonlyMap<number, number>): EveryState | null {
  let seen: Record<string, number> | undefined;
  for (const [slot, at] of arrivals) {
    if (slot <= state.checked) continue;
    const known = (seen ?? state.seen)[slot];
    if (known !== undefined && known <= at) continue;
    seen ??= { ...state.seen };
    seen[slot] = at;
  }
  return seen ? { ...state, seen } : null;
}

export type EveryContext = { sla: string; source: string; every: number; watermark: number };

function missing(ctx: EveryContext, windowStart: number): MissingDataAlert {
  const expectedBy = windowStart + ctx.every;
  return {
    id: alertId('MissingData', { sla: ctx.sla, source: ctx.source, windowStart }),
    kind: 'MissingData',
    source: ctx.source,
    sla: ctx.sla,
    at: expectedBy,
    schedule: 'every',
    expectedBy,
    windowStart,
    message: `no event from ${ctx.source} between ${iso(windowStart)} and ${iso(expectedBy)} (expected at least one every ${formatMs(ctx.every)})`,
  };
}

/** Judges every interval complete by the watermark; null when nothing changed. */
export function advanceEvery(state: EveryState, ctx: EveryContext): EveryState | null {
  const { every, watermark } = ctx;
  const lastComplete = slotStart(watermark, every) - every;
  const seen = { ...state.seen };
  const outbox = [...state.outbox];
  let { checked, gap } = state;
  const resolve = (arrivedAt: number) => {
    outbox.push(resolvedAlert({ id: gap!.id, kind: 'MissingData', source: ctx.source, sla: ctx.sla, expectedBy: gap!.expectedBy }, arrivedAt));
    gap = null;
  };
  const openGap = (windowStart: number) => {
    if (gap) return;
    const alert = missing(ctx, windowStart);
    outbox.push(alert);
    gap = { id: alert.id, windowStart, expectedBy: alert.expectedBy };
  };
  const arrivals = Object.keys(seen).map(Number).sort((a, b) => a - b);
  for (const slot of arrivals) {
    if (slot > lastComplete) break;
    if (slot <= checked) {
      delete seen[slot];
      continue;
    }
    // every interval between the last judged one and this arrival stayed empty
    if (slot > checked + every) openGap(checked + every);
    if (gap) resolve(seen[slot]!);
    delete seen[slot];
    checked = slot;
  }
  if (lastComplete > checked) {
    openGap(checked + every);
    checked = lastComplete;
  }
  // data already back in the running interval ends the outage now, not when the interval closes;
  // only arrivals before the watermark are known to be the first
  if (gap) {
    const early = Object.values(seen).filter((at) => at <= watermark);
    if (early.length) resolve(Math.min(...early));
  }
  const changed = checked !== state.checked || outbox.length !== state.outbox.length;
  return changed ? { ...state, checked, seen, gap, outbox } : null;
}
