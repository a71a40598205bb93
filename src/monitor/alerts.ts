import { alertId } from '../core/alert-kinds.ts';

/**
 * What the monitor raises. `at` is when the alerted condition became true, derived
 * from event times and the schedule (a bucket's end, a deadline, an arrival), never
 * from when a monitor happened to run; `raisedAt` is added when it is published.
 * `id` is derived from kind, SLA, source and group, slot or day, so every instance and
 * every restart computes the same id for the same alert.
 */
type AlertBase = {
  id: string;
  /** the event source, or the report for report alerts */
  source: string;
  sla: string;
  at: number;
  message: string;
};

/** Counts, delays, times and lists are of the late events new in this alert; `total*` of the whole group. */
export type DelayedEventAlert = AlertBase & {
  kind: 'DelayedEvent';
  maxDelayMs: number;
  /** id of the group's first alert */
  group: string;
  /** 1 for the group's first alert; 2, 3, … for its updates */
  sequence: number;
  /** the alert this one updates (absent on the first) */
  updates?: string;
  groupStartedAt: number;
  count: number;
  totalCount: number;
  worstDelayMs: number;
  totalWorstDelayMs: number;
  p95DelayMs: number;
  firstReceivedAt: number;
  lastReceivedAt: number;
  /** business days (SLA time zone) of the late events' occurredAt */
  days: string[];
  /** `report/day` pairs the late events feed */
  reportDays: string[];
  /** the `report/day` pairs that already had a published revision when a late event for them arrived */
  revisedDays: string[];
  /** late events that landed on such an already published day */
  changedPublished: number;
};

export type MissingDataAlert = AlertBase & {
  kind: 'MissingData';
  schedule: 'every' | 'dailyBy';
  expectedBy: number;
  /** every: the interval that stayed empty */
  windowStart?: number;
  /** dailyBy: the business day whose data did not arrive */
  day?: string;
};

export type DeadlineMissedAlert = AlertBase & {
  kind: 'DeadlineMissed';
  report: string;
  day: string;
  status: 'preliminary' | 'final';
  expectedBy: number;
  /** groups that had not reached the status by the deadline (none at all: no group had data) */
  lagging: Array<{ groupKey: string; status: string }>;
};

export type ResolvedAlert = AlertBase & {
  kind: 'Resolved';
  resolves: string;
  resolvedKind: 'MissingData' | 'DeadlineMissed';
  expectedBy: number;
  arrivedAt: number;
  lateByMs: number;
  day?: string;
};

/** A glob SLA reached `maxSourcesPerSla`: events of further sources are stored and reported but not checked. One per SLA and day (UTC). */
export type CardinalityCappedAlert = AlertBase & {
  kind: 'CardinalityCapped';
  day: string;
  limit: number;
  /** a source that was cut (the first one this alert's batch met) */
  example: string;
};


/** A DelayedEvent group with no late event for `resolveAfter`. */
export type DelayedResolvedAlert = AlertBase & {
  kind: 'Resolved';
  resolves: string;
  resolvedKind: 'DelayedEvent';
  /** alerts the group raised */
  alerts: number;
  totalCount: number;
  worstDelayMs: number;
  lastReceivedAt: number;
};

export type Alert = DelayedEventAlert | MissingDataAlert | DeadlineMissedAlert | ResolvedAlert | DelayedResolvedAlert | CardinalityCappedAlert;

export const iso = (ms: number): string => new Date(ms).toISOString();

export const formatMs = (ms: number): string => {
  const s = Math.round(ms / 1000);
  if (Math.abs(s) < 120) return `${s}s`;
  if (Math.abs(s) < 7_200) return `${Math.round(s / 60)}m`;
  return `${(s / 3_600).toFixed(1)}h`;
};

export function resolvedAlert(missed: { id: string; kind: 'MissingData' | 'DeadlineMissed'; source: string; sla: string; expectedBy: number; day?: string }, arrivedAt: number): ResolvedAlert {
  const lateByMs = arrivedAt - missed.expectedBy;
  return {
    id: alertId('Resolved', { resolves: missed.id }),
    kind: 'Resolved',
    source: missed.source,
    sla: missed.sla,
    at: arrivedAt,
    resolves: missed.id,
    resolvedKind: missed.kind,
    expectedBy: missed.expectedBy,
    arrivedAt,
    lateByMs,
    ...(missed.day === undefined ? {} : { day: missed.day }),
    message: `${missed.kind === 'MissingData' ? 'data' : 'report status'} for ${missed.source}${missed.day ? ` ${missed.day}` : ''} arrived ${formatMs(lateByMs)} after ${iso(missed.expectedBy)}`,
  };
}
