import { TZDate } from '@date-fns/tz';
import { businessDay, dayEndMs, nextDay } from '../core/business-day.ts';

export { businessDay, nextDay };

/** Start of the fixed interval (aligned to the epoch) that holds `t`. */
export const slotStart = (t: number, every: number): number => Math.floor(t / every) * every;

const DAY_MS = 86_400_000;
/** Deadlines longer than a year after their day are not a schedule anyone means. */
const MAX_LOOKBACK_DAYS = 400;

export function previousDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) - DAY_MS).toISOString().slice(0, 10);
}

/**
 * "Day D's data by D+1 HH:MM": the instant of that wall-clock time in the zone. On a
 * DST day whose HH:MM does not exist, the instant the clocks jump to.
 */
export function dailyDeadline(day: string, by: { hour: number; minute: number }, timeZone: string): number {
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  return new TZDate(y, m - 1, d + 1, by.hour, by.minute, timeZone).getTime();
}

/** A report's day must reach a status `by` after the day ends, in the report's zone. */
export const reportDeadline = (day: string, timeZone: string, by: number): number => dayEndMs(day, timeZone) + by;

/**
 * The first day whose deadline falls after `since`: where checks begin for a source
 * first seen (or first expected) at `since`, so nothing before it is ever alerted.
 * Deadlines grow with the day, and a long one (a report final 3 days after the day
 * ends) reaches back several days before since's own.
 */
export function firstDayDueAfter(since: number, timeZone: string, deadlineOf: (day: string) => number): string {
  let day = businessDay(since, timeZone);
  for (let i = 0; i < MAX_LOOKBACK_DAYS && deadlineOf(previousDay(day)) > since; i++) day = previousDay(day);
  while (deadlineOf(day) <= since) day = nextDay(day);
  return day;
}
