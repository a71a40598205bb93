import type { ClickHouseClient } from '@clickhouse/client';
import { formatDuration } from '../core/duration.ts';
import type { Clock } from '../core/time.ts';
import { insertDelaySlices, insertDelayStats, windowTotals, type DelayStatsRow } from '../sinks/clickhouse/delay-stats-table.ts';
import type { MonitorMetrics } from './metrics.ts';
import { windowStats, type Slice, type SliceAccumulator } from './slices.ts';

export type DelayStatsDeps = {
  clickhouse: ClickHouseClient;
  db: string;
  instance: string;
  slices: SliceAccumulator;
  sliceMs: number;
  windows: readonly number[];
  clock: Clock;
  metrics: MonitorMetrics;
};

export type DelayStatsWriter = { flush: () => Promise<DelayStatsRow[]> };

/**
 * Writes this instance's new slices, then recomputes each sliding window from the
 * slices of every instance and stores one `delay_stats` row per (source, window) at
 * an instant aligned to the slice size: instances writing the same instant replace
 * each other's row instead of adding one.
 */
export function delayStatsWriter(deps: DelayStatsDeps): DelayStatsWriter {
  let unsent: Slice[] = [];
  return {
    flush: async () => {
      const slices = [...unsent, ...deps.slices.drain()];
      unsent = slices;
      await insertDelaySlices(deps.clickhouse, deps.db, deps.instance, slices);
      unsent = [];
      const computedAt = Math.floor(deps.clock.now() / deps.sliceMs) * deps.sliceMs;
      const all = [];
      const rows: DelayStatsRow[] = [];
      for (const windowMs of deps.windows) {
        const stats = (await windowTotals(deps.clickhouse, deps.db, computedAt - windowMs, computedAt)).map(windowStats);
        all.push({ windowMs, stats });
        for (const s of stats) rows.push({ ...s, computedAt, windowLabel: formatDuration(windowMs), windowMs });
      }
      await insertDelayStats(deps.clickhouse, deps.db, rows);
      deps.metrics.windows(all);
      return rows;
    },
  };
}
