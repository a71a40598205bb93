/**
 * The revision decision of the daily view, for one (report, business day, group).
 *
 * Definitions:
 * - A *late event* is one applied to a (report, day, group) that already has a
 *   revision, or after the day's close: it changes (or could change) a figure that was
 *   already published. Events coalesced into a revision 1 before close are not late,
 *   whatever their delay; delay against an SLA is the monitor's business.
 * - `lateEvents` on a record is cumulative (late events included in its figure), like
 *   `events`. It follows from the definition, so it is derived rather than passed in:
 *   0 for revision 1 before close, all its events for revision 1 after close, and
 *   after that the previous count plus the events added since the previous revision
 *   (including those of decisions that published nothing). A replay whose new rules
 *   drop events never lowers it.
 * - A *value change* is a change of any measure (canonical text, so string equality is
 *   value equality). `events`, `lateEvents` and `knownAt` changing alone (e.g. an event
 *   whose amount is 0) publish nothing: the figure a reader sees did not move.
 * - *Close* is judged by `nowMs`, the caller's processing clock (in a replay pass the
 *   replay time). At or after the close, a still-preliminary figure becomes `final`,
 *   taking in whatever the state holds by then, changed or not; the processor calls
 *   `closeDue` on a clock so the final lands before post-close events are applied.
 *   After a final, every value change is `amended` and raises an alert. A group whose
 *   very first event arrives after close starts at revision 1 `amended`: the day had
 *   been final without it, so its appearance is a correction and is alerted as one.
 *
 * Reasons: 'new' (revision 1 before close), 'late' (preliminary n+1), 'close' (the
 * final), 'amend' (amended), 'replay' (any record written by a replay; a replay
 * follows the same status rules but raises no alert, since an operator asked for it).
 * Revisions are gap-free (previous + 1) and status never returns to 'preliminary'.
 */

import { sameMeasures } from '../../core/decimal.ts';
export type RevisionStatus = 'preliminary' | 'final' | 'amended';
export type RevisionReason = 'new' | 'late' | 'close' | 'amend' | 'replay';

export interface RevisionRecord {
  readonly revision: number;
  readonly status: RevisionStatus;
  readonly reason: RevisionReason;
  readonly measures: Readonly<Record<string, string>>;
  readonly events: number;
  readonly lateEvents: number;
  /** Latest receivedAt included. */
  readonly knownAt: number;
  /** When the decision was taken (the caller's nowMs). */
  readonly computedAt: number;
}

/** The current figure of the (report, day, group), as computed from its measure state. */
export interface Observation {
  readonly measures: Readonly<Record<string, string>>;
  readonly events: number;
  readonly knownAt: number;
}

export interface RevisionDecision {
  readonly record: RevisionRecord;
  /** The caller raises an alert: a figure changed after it was final. */
  readonly alert: boolean;
}

export interface RevisionOptions {
  readonly replay?: boolean;
}

/** The `final` record due at the close, or null when it is not due (yet) or already written. */
export function closeDue(previous: RevisionRecord | null, nowMs: number, closeAtMs: number, options: RevisionOptions = {}): RevisionRecord | null {
  if (previous === null || previous.status !== 'preliminary' || nowMs < closeAtMs) return null;
  return { ...previous, revision: previous.revision + 1, status: 'final', reason: options.replay ? 'replay' : 'close', computedAt: nowMs };
}

/** The next revision after applying the events behind `observed`, or null when nothing a reader sees has changed. */
export function nextRevision(
  previous: RevisionRecord | null,
  observed: Observation,
  nowMs: number,
  closeAtMs: number,
  options: RevisionOptions = {},
): RevisionDecision | null {
  const replay = options.replay === true;
  const closed = nowMs >= closeAtMs;
  const figure = { measures: observed.measures, events: observed.events, knownAt: observed.knownAt, computedAt: nowMs };
  if (previous === null) {
    if (observed.events === 0) return null;
    const status = closed ? 'amended' : 'preliminary';
    const reason = replay ? 'replay' : closed ? 'amend' : 'new';
    return { record: { ...figure, revision: 1, status, reason, lateEvents: closed ? observed.events : 0 }, alert: closed && !replay };
  }
  const changed = !sameMeasures(previous.measures, observed.measures);
  const base = { ...figure, revision: previous.revision + 1, lateEvents: previous.lateEvents + Math.max(0, observed.events - previous.events) };
  if (previous.status === 'preliminary') {
    if (closed) return { record: { ...base, status: 'final', reason: replay ? 'replay' : 'close' }, alert: false };
    return changed ? { record: { ...base, status: 'preliminary', reason: replay ? 'replay' : 'late' }, alert: false } : null;
  }
  return changed ? { record: { ...base, status: 'amended', reason: replay ? 'replay' : 'amend' }, alert: !replay } : null;
}
