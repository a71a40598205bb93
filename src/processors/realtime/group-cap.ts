import type { ReportConfig } from '../../core/config.ts';
import type { TidemarkEvent } from '../../core/envelope.ts';
import { compileGroupKey } from '../logic/group.ts';

/**
 * How many groups one report's realtime windows hold at once. Groups are the sender's
 * choice (`data.<field>`, `source`): a million made-up values would otherwise be a
 * million panes in memory and rows in every refresh. Above the limit an event of a new
 * group is left out of the realtime view only; it is still stored in `events` and
 * counted in the daily view, and `tidemark_realtime_events_cut_total` counts it.
 * A group's place frees once every window it could be in has closed.
 */
export type GroupCap = {
  /** whether the event's group has a place (it has one already, or there is room) */
  admits: (event: TidemarkEvent) => boolean;
  /** forgets groups whose every window is closed by `watermark` (WindowStore's) */
  release: (watermark: number) => void;
  /** the event's group key, as the cap counts it */
  groupOf: (event: TidemarkEvent) => string;
  readonly size: number;
};

export function groupCap(report: ReportConfig, max: number): GroupCap {
  const groupOf = compileGroupKey(report);
  const longest = Math.max(0, ...report.windows.map((w) => w.size));
  /** group → the latest occurredAt it was given: its last window ends before that plus the longest size */
  const held = new Map<string, number>();
  return {
    admits: (event) => {
      const group = groupOf(event);
      const latest = held.get(group);
      if (latest === undefined && held.size >= max) return false;
      if (latest === undefined || event.occurredAt > latest) held.set(group, event.occurredAt);
      return true;
    },
    release: (watermark) => {
      for (const [group, latest] of held) if (latest + longest <= watermark) held.delete(group);
    },
    groupOf,
    get size() {
      return held.size;
    },
  };
}
