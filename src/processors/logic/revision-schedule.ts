/**
 * When the revisor recomputes a dirty day. A day waits its report's coalescing interval
 * (a burst of late events becomes one revision), and longer when its revisions go
 * through many rows: at most one read per (rows gone through) / SCAN_EVENTS_PER_SECOND
 * seconds. A revision reads only what arrived since the day's last one (day-compute.ts),
 * and the arrival index usually keeps that to the granules holding it, so this holds
 * back a day taking in more than that many events a second, one read whole every time
 * (no arrival mark, or a small day), and a day whose arrivals merges have spread over
 * every granule (its events all within the same minutes, arriving all the time): each
 * of its deltas costs about a read of the whole day, like a revision before deltas.
 * Scanning a day costs ClickHouse about 0.14 µs of CPU an event on a quiet box (1.5M
 * events: 110 ms on two threads) and several times that on a busy one; at 100k, a day
 * of 1.5M events is recomputed every 15 s, for a few percent of a core.
 *
 * A scan also holds chDB's calls with query parameters (one at a time per process) for
 * as long as it runs, so a late day falling due meanwhile would wait for today's big
 * scan. A day whose last scan took a while therefore lets a quicker day that is due, or
 * falls due within that time, go first (start its scan first), for at most one
 * coalescing interval past its own due time.
 */
export const SCAN_EVENTS_PER_SECOND = 100_000;
/** Scans shorter than this never make another day wait. */
export const YIELD_ABOVE_MS = 100;

export type DayWait = {
  id: string;
  /** since when its unrevised marks have waited: the first mark, or the start of the last revision */
  waitingSince: number;
  coalesceMs: number;
  /** the rows its last revision's reads went through and how long its scan took, once it has been revised here */
  lastScan?: { rows: number; ms: number } | undefined;
  inFlight: boolean;
};

export function dueAt(day: DayWait): number {
  const scanInterval = ((day.lastScan?.rows ?? 0) / SCAN_EVENTS_PER_SECOND) * 1_000;
  return day.waitingSince + Math.max(day.coalesceMs, scanInterval);
}

function yieldsToQuickerDay(day: DayWait, days: readonly DayWait[], now: number): boolean {
  const ownMs = day.lastScan?.ms ?? 0;
  if (ownMs < YIELD_ABOVE_MS || now - dueAt(day) >= day.coalesceMs) return false;
  return days.some((other) => {
    if (other.id === day.id || other.inFlight || (other.lastScan?.ms ?? 0) >= ownMs) return false;
    // one due now goes first too: its scan must reach chDB before this one's
    return dueAt(other) <= now + ownMs;
  });
}

/** The days to recompute now, in the order given. */
export function daysDue(days: readonly DayWait[], now: number): DayWait[] {
  return days.filter((day) => !day.inFlight && now >= dueAt(day) && !yieldsToQuickerDay(day, days, now));
}
