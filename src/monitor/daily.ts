import { alertId } from '../core/alert-kinds.ts';
import { resolvedAlert, iso, type Alert, type MissingDataAlert } from './alerts.ts';
import { nextDay } from './schedule.ts';

/**
 * "Day D's data by D+1 HH:MM": D's data has arrived once any event whose occurredAt
 * falls on D (in the SLA's zone) has been received. `checked` is the last day judged;
 * `seen` the first arrival per day not judged yet, or judged missing and still open.
 */
export type DailyState = {
  checked: string;
  seen: Record<string, number>;
  open: Record<string, { id: string; expectedBy: number }>;
  outbox: Alert[];
  /** the latest receivedAt of the source's events, refreshed now and then (idle.ts) */
  lastAt?: number;
};

export const initialDaily = (checked: string): DailyState => ({ checked, seen: {}, open: {}, outbox: [] });

export function markDaily(state: DailyState, arrivals: ReadonlyMap<string, number>): DailyState | null {
  let seen: Record<string, number> | undefined;
  for (const [day, at] of arrivals) {
    if (day <= state.checked && !state.open[day]) continue;
    const known = (seen ?? state.seen)[day];
    if (known !== undefined && known <= at) continue;
    seen ??= { ...state.seen };
    seen[day] = at;
  }
  return seen ? { ...state, seen } : null;
}

export type DailyContext = { sla: string; source: string; watermark: number; deadlineOf: (day: string) => number };

function missing(ctx: DailyContext, day: string, expectedBy: number): MissingDataAlert {
  return {
    id: alertId('MissingData', { sla: ctx.sla, source: ctx.source, day }),
    kind: 'MissingData',
    source: ctx.source,
    sla: ctx.sla,
    at: expectedBy,
    schedule: 'dailyBy',
    expectedBy,
    day,
    message: `no data from ${ctx.source} for ${day} by ${iso(expectedBy)}`,
  };
}

/** Judges every day whose deadline the watermark has passed, and resolves open days whose data came; null when nothing changed. */
export function advanceDaily(state: DailyState, ctx: DailyContext): DailyState | null {
  const seen = { ...state.seen };
  const open = { ...state.open };
  const outbox = [...state.outbox];
  let checked = state.checked;
  for (let day = nextDay(checked); ctx.deadlineOf(day) <= ctx.watermark; day = nextDay(day)) {
    const expectedBy = ctx.deadlineOf(day);
    const arrived = seen[day];
    delete seen[day];
    checked = day;
    if (arrived !== undefined && arrived <= expectedBy) continue;
    const alert = missing(ctx, day, expectedBy);
    outbox.push(alert);
    // a monitor catching up may find the late arrival already merged: both alerts, each at its own time
    if (arrived !== undefined && arrived <= ctx.watermark) {
      outbox.push(resolvedAlert({ ...alert, kind: 'MissingData' }, arrived));
    } else {
      open[day] = { id: alert.id, expectedBy };
      if (arrived !== undefined) seen[day] = arrived;
    }
  }
  for (const [day, missed] of Object.entries(open)) {
    const arrived = seen[day];
    if (arrived === undefined || arrived > ctx.watermark) continue;
    outbox.push(resolvedAlert({ id: missed.id, kind: 'MissingData', source: ctx.source, sla: ctx.sla, expectedBy: missed.expectedBy, day }, arrived));
    delete open[day];
    delete seen[day];
  }
  const changed = checked !== state.checked || outbox.length !== state.outbox.length;
  return changed ? { ...state, checked, seen, open, outbox } : null;
}
