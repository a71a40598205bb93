import type { ReportConfig } from '../../core/config.ts';
import { daysWithEvents } from '../../query/revisions.ts';
import { reviseDay, type RevisorDeps } from './revisor.ts';

export type ReplayProgress = { day: string; done: number; total: number };
export type ReplayResult = { days: number; events: number; revisions: number; seconds: number };

/**
 * Recomputes every business day of `report` (within `from`..`to`) from the event
 * store, day by day, writing a `replay` revision wherever a figure changed.
 * `onStart` hears the total first, then `onDay` after each day.
 */
export async function replayReport(
  deps: Omit<RevisorDeps, 'reports'>,
  report: ReportConfig,
  range: { from?: string; to?: string },
  listeners: { onStart?: (total: number) => void; onDay?: (progress: ReplayProgress) => void } = {},
): Promise<ReplayResult> {
  const days = await daysWithEvents(deps.clickhouse, deps.db, report, range.from, range.to);
  const total = days.reduce((n, d) => n + d.events, 0);
  listeners.onStart?.(total);
  const started = performance.now();
  let done = 0;
  let revisions = 0;
  for (const { day, events } of days) {
    const outcome = await reviseDay({ ...deps, reports: [report] }, { report: report.name, day }, { replay: true });
    revisions += outcome.written;
    done += events;
    listeners.onDay?.({ day, done, total });
  }
  return { days: days.length, events: total, revisions, seconds: (performance.now() - started) / 1000 };
}
