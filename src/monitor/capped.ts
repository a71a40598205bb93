import { alertId } from '../core/alert-kinds.ts';
import { iso, type Alert, type CardinalityCappedAlert } from './alerts.ts';

/**
 * Says in an alert, not only in a metric and a log, that a glob SLA cut sources: one
 * CardinalityCapped per SLA and UTC day of the first cut event's receivedAt, decided
 * by compare-and-set on `c.<sla>` like every other monitor alert, so instances racing
 * or batches redelivered raise it once.
 */
export type CappedState = { days: string[]; outbox: Alert[] };

export const cappedKey = (sla: string): string => `c.${sla}`;
export const emptyCapped = (): CappedState => ({ days: [], outbox: [] });

/** Days remembered: enough to never raise a day twice while its events can still arrive. */
const DAYS_KEPT = 7;

export type Cut = { sla: string; limit: number; receivedAt: number; source: string };

export const cutDay = (receivedAt: number): string => iso(receivedAt).slice(0, 10);

/** Adds the day's alert unless the day already has one; null when nothing changes. */
export function noteCut(state: CappedState, cut: Cut): CappedState | null {
  const day = cutDay(cut.receivedAt);
  if (state.days.includes(day)) return null;
  const alert: CardinalityCappedAlert = {
    id: alertId('CardinalityCapped', { sla: cut.sla, day }),
    kind: 'CardinalityCapped',
    source: cut.sla,
    sla: cut.sla,
    at: cut.receivedAt,
    day,
    limit: cut.limit,
    example: cut.source,
    message: `SLA ${cut.sla} keeps state for at most ${cut.limit} sources; on ${day} events of further sources (e.g. ${JSON.stringify(cut.source.slice(0, 64))}) were stored and reported but not checked against it`,
  };
  return { days: [...state.days, day].sort().slice(-DAYS_KEPT), outbox: [...state.outbox, alert] };
}
