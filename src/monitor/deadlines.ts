import { alertId } from '../core/alert-kinds.ts';
import { iso, resolvedAlert, type Alert, type DeadlineMissedAlert } from './alerts.ts';
import { nextDay } from './schedule.ts';

/**
 * Report deadlines: "report R's day D reaches `status` by D's end + by". A day has
 * reached it when every group's revisions include one of that status or later
 * (`amended` counts as past `final`); a day without any group has not.
 */
export type DeadlineState = {
  checked: string;
  open: Record<string, { id: string; expectedBy: number }>;
  outbox: Alert[];
};

/** One group of a day: its current status and when (computed_at) it first reached the wanted status. */
export type GroupProgress = { groupKey: string; status: string; reachedAt: number | null };

export const initialDeadline = (checked: string): DeadlineState => ({ checked, open: {}, outbox: [] });

/** When the whole day reached the status: the last of its groups to get there. */
function dayReachedAt(groups: readonly GroupProgress[]): number | null {
  if (groups.length === 0 || groups.some((g) => g.reachedAt === null)) return null;
  return Math.max(...groups.map((g) => g.reachedAt!));
}

export type DeadlineContext = {
  sla: string;
  report: string;
  status: 'preliminary' | 'final';
  now: number;
  deadlineOf: (day: string) => number;
};

/** Days whose progress `advanceDeadline` needs: due and not judged yet, or missed and still open. */
export function daysToCheck(state: DeadlineState, ctx: Pick<DeadlineContext, 'now' | 'deadlineOf'>): string[] {
  const days = Object.keys(state.open);
  for (let day = nextDay(state.checked); ctx.deadlineOf(day) <= ctx.now; day = nextDay(day)) days.push(day);
  return days;
}

function missed(ctx: DeadlineContext, day: string, expectedBy: number, groups: readonly GroupProgress[]): DeadlineMissedAlert {
  const lagging = groups.filter((g) => g.reachedAt === null || g.reachedAt > expectedBy).map((g) => ({ groupKey: g.groupKey, status: g.status }));
  return {
    id: alertId('DeadlineMissed', { report: ctx.report, status: ctx.status, day }),
    kind: 'DeadlineMissed',
    source: ctx.report,
    sla: ctx.sla,
    at: expectedBy,
    report: ctx.report,
    day,
    status: ctx.status,
    expectedBy,
    lagging,
    message: groups.length === 0
      ? `report ${ctx.report} has no figures for ${day} at its ${ctx.status} deadline ${iso(expectedBy)}`
      : `report ${ctx.report} ${day}: ${lagging.length} of ${groups.length} group(s) not ${ctx.status} by ${iso(expectedBy)}`,
  };
}

export function advanceDeadline(state: DeadlineState, ctx: DeadlineContext, progress: ReadonlyMap<string, readonly GroupProgress[]>): DeadlineState | null {
  const open = { ...state.open };
  const outbox = [...state.outbox];
  let checked = state.checked;
  const resolve = (id: string, day: string, expectedBy: number, reachedAt: number) =>
    outbox.push(resolvedAlert({ id, kind: 'DeadlineMissed', source: ctx.report, sla: ctx.sla, expectedBy, day }, reachedAt));
  for (let day = nextDay(checked); ctx.deadlineOf(day) <= ctx.now; day = nextDay(day)) {
    const expectedBy = ctx.deadlineOf(day);
    const groups = progress.get(day) ?? [];
    const reachedAt = dayReachedAt(groups);
    checked = day;
    if (reachedAt !== null && reachedAt <= expectedBy) continue;
    const alert = missed(ctx, day, expectedBy, groups);
    outbox.push(alert);
    if (reachedAt !== null && reachedAt <= ctx.now) resolve(alert.id, day, expectedBy, reachedAt);
    else open[day] = { id: alert.id, expectedBy };
  }
  for (const [day, entry] of Object.entries(state.open)) {
    const reachedAt = dayReachedAt(progress.get(day) ?? []);
    if (reachedAt === null || reachedAt > ctx.now) continue;
    resolve(entry.id, day, entry.expectedBy, reachedAt);
    delete open[day];
  }
  const changed = checked !== state.checked || outbox.length !== state.outbox.length;
  return changed ? { checked, open, outbox } : null;
}
