import type { DailyState } from './daily.ts';
import type { DeadlineState } from './deadlines.ts';
import type { DelayedState } from './delayed.ts';
import type { EveryState } from './every.ts';
import { nextDay } from './schedule.ts';

/**
 * When a check of a state could next raise something, so the monitor's loop wakes then
 * rather than at its next tick. Two scales: the clock (report deadlines, groupWait,
 * groupInterval) and the watermark (slots, daily deadlines, resolveAfter: judged once
 * every event received before them is merged). Dues already passed are not listed:
 * the check just made handled them, or waits for the watermark.
 */
export type Due = { clock: number; watermark: number };

const NONE: Due = { clock: Number.POSITIVE_INFINITY, watermark: Number.POSITIVE_INFINITY };

export function delayedDue(state: DelayedState, ms: { groupWaitMs: number; groupIntervalMs: number; resolveAfterMs: number }): Due {
  const group = state.group;
  if (!group) return NONE;
  if (group.fresh !== null) return { ...NONE, clock: group.sent === 0 ? group.startedAt + ms.groupWaitMs : group.sentAt + ms.groupIntervalMs };
  return group.sent > 0 ? { ...NONE, watermark: group.total.lastAt + ms.resolveAfterMs } : NONE;
}

/** The next interval is complete once the watermark reaches its end. */
export const everyDue = (state: EveryState, every: number): Due => ({ ...NONE, watermark: state.checked + 2 * every });

export const dailyDue = (state: DailyState, deadlineOf: (day: string) => number): Due => ({ ...NONE, watermark: deadlineOf(nextDay(state.checked)) });

export const deadlineDue = (state: DeadlineState, deadlineOf: (day: string) => number): Due => ({ ...NONE, clock: deadlineOf(nextDay(state.checked)) });

/**
 * The clock instant to wake at for the earliest future one of `dues`. A watermark due
 * counts only while the monitor is caught up (its watermark is the clock minus the
 * grace, so it is reached at that due plus the grace); behind, the watermark moves as
 * events are merged, and the tick is the pace.
 */
export function wakeAt(dues: Iterable<Due>, now: number, watermark: number, caughtUp: boolean): number {
  let wake = Number.POSITIVE_INFINITY;
  for (const due of dues) {
    if (due.clock > now) wake = Math.min(wake, due.clock);
    if (caughtUp && due.watermark > watermark) wake = Math.min(wake, now + (due.watermark - watermark));
  }
  return wake;
}
