import { businessDay, dayEndMs, dayStartMs } from '../../core/business-day.ts';
import type { ReconRecord } from './types.ts';

/**
 * A batch run covers the business day [start, end), but reads both systems over
 * [from, to) = the day widened by the lag on each side, so a record whose partner
 * trails it across midnight is still matched.
 */
export type BatchWindow = { period: string; start: number; end: number; from: number; to: number };

export function batchWindow(period: string, timeZone: string, lag: number): BatchWindow {
  const start = dayStartMs(period, timeZone);
  const end = dayEndMs(period, timeZone);
  return { period, start, end, from: start - lag, to: end + lag };
}

/**
 * The period a key belongs to: the day of its earliest A record when A has one (A is the
 * reference), else of its earliest B record. A run reports only the keys of its own day,
 * so a key seen in the widened margins of two runs is reported by exactly one of them.
 */
export function ownerPeriod(as: readonly ReconRecord[], bs: readonly ReconRecord[], timeZone: string): string | undefined {
  const side = as.length > 0 ? as : bs;
  if (side.length === 0) return undefined;
  return businessDay(Math.min(...side.map((r) => r.time)), timeZone);
}
