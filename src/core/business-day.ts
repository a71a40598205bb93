/**
 * Business days: the calendar date (YYYY-MM-DD) of an instant in the report's time
 * zone, and the instants where such a day starts and ends.
 *
 * A day starts at the first instant whose local date is that day — local midnight,
 * or the end of the DST gap when midnight is skipped (America/Havana, America/Sao_Paulo
 * before 2019) — and ends where the next day starts, so DST days last 23 or 25 hours
 * and a day skipped by a date-line move (Pacific/Apia, 2011-12-30) is empty. This
 * relies on local dates never running backwards, which holds for the IANA zones.
 */
import { tzOffset } from '@date-fns/tz';
import type { ReportConfig } from './config.ts';

const DAY_MS = 86_400_000;
/** Further than any UTC offset (-12h..+14h) plus a DST hour, so a day's start lies inside. */
const SEARCH_MS = 16 * 3_600_000;
const DAY_TEXT = /^(\d{4})-(\d{2})-(\d{2})$/;

const utcDate = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

function offsetMs(ms: number, timeZone: string): number {
  const minutes = tzOffset(timeZone, new Date(ms));
  if (Number.isNaN(minutes)) throw new RangeError(`unknown time zone "${timeZone}"`);
  return Math.round(minutes * 60_000);
}

const localDate = (ms: number, timeZone: string): string => utcDate(ms + offsetMs(ms, timeZone));

/** UTC midnight of a YYYY-MM-DD day; throws on anything else, including 2026-02-30. */
function parseDay(day: string): number {
  const match = DAY_TEXT.exec(day);
  const ms = match ? Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) : NaN;
  if (Number.isNaN(ms) || utcDate(ms) !== day) throw new RangeError(`"${day}" is not a YYYY-MM-DD date`);
  return ms;
}

export const nextDay = (day: string): string => utcDate(parseDay(day) + DAY_MS);

interface DayRange { readonly day: string; readonly start: number; readonly end: number }

/**
 * Day bounds already computed, per zone, filed under the day index the instant would
 * have at one fixed offset (the zone's first one seen). Each 24-hour slot overlaps at
 * most three real days, so a lookup is a map get and a range check or two, even when
 * events of several days interleave; the Intl lookups run once per day.
 */
const dayCache = new Map<string, { offset: number; slots: Map<number, DayRange[]> }>();
/** Slots kept per zone before the cache starts over: years of days, a few hundred KB. */
const MAX_SLOTS = 4_096;

export function businessDay(occurredAtMs: number, timeZone: string): string {
  let zone = dayCache.get(timeZone);
  if (!zone) {
    zone = { offset: offsetMs(occurredAtMs, timeZone), slots: new Map() };
    dayCache.set(timeZone, zone);
  }
  const slot = Math.floor((occurredAtMs + zone.offset) / DAY_MS);
  const ranges = zone.slots.get(slot) ?? [];
  for (const range of ranges) if (occurredAtMs >= range.start && occurredAtMs < range.end) return range.day;
  const day = localDate(occurredAtMs, timeZone);
  if (ranges.length === 0) {
    if (zone.slots.size >= MAX_SLOTS) zone.slots.clear();
    zone.slots.set(slot, ranges);
  }
  ranges.push({ day, start: dayStartMs(day, timeZone), end: dayEndMs(day, timeZone) });
  return day;
}

export function dayStartMs(day: string, timeZone: string): number {
  const midnightUtc = parseDay(day);
  const startsHere = (ms: number): boolean => localDate(ms, timeZone) >= day && localDate(ms - 1, timeZone) < day;
  // Local midnight at the offset in force around it: right except on a few DST days; checked.
  const guess = midnightUtc - offsetMs(midnightUtc - offsetMs(midnightUtc, timeZone), timeZone);
  if (startsHere(guess)) return guess;
  // Midnight fell in a gap (or the guess missed): find the first instant of the day by bisection.
  let before = midnightUtc - SEARCH_MS;
  let at = midnightUtc + SEARCH_MS;
  while (at - before > 1) {
    const mid = Math.floor((before + at) / 2);
    if (localDate(mid, timeZone) >= day) at = mid;
    else before = mid;
  }
  return at;
}

/** Exclusive: the start of the next day. */
export const dayEndMs = (day: string, timeZone: string): number => dayStartMs(nextDay(day), timeZone);

/** When the day's figure becomes final: the end of the day plus the report's close delay. */
export const closeAtMs = (day: string, report: ReportConfig): number => dayEndMs(day, report.timeZone) + report.close.after;
