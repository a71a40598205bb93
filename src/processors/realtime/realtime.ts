import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from 'pino';
import type { ReportConfig } from '../../core/config.ts';
import type { TidemarkEvent } from '../../core/envelope.ts';
import { sleep, type Clock } from '../../core/time.ts';
import { insertRealtime, realtimeRow, type RealtimeRow } from '../../sinks/clickhouse/realtime-table.ts';
import { Watermark, WindowStore } from '../logic/windows.ts';
import { metricsRegistry } from '../../core/metrics.ts';
import type { Registry } from 'prom-client';
import { groupCap, realtimeCutCounter } from './group-cap.ts';

export type RealtimeStats = { lateRejected: number; emitted: number; openWindows: number; groupsCut: number };

export type Realtime = {
  add: (events: TidemarkEvent[]) => void;
  /** Emits what is due now (the loop calls it every refresh; tests and shutdown call it directly). */
  flush: () => Promise<void>;
  stats: RealtimeStats;
  stop: () => Promise<void>;
};

export type RealtimeOptions = {
  reports: ReportConfig[];
  clickhouse: ClickHouseClient;
  db: string;
  clock: Clock;
  logger: Logger;
  instance: string;
  refreshMs: number;
  idleMs: number;
  /** groups per report at once (processor.maxRealtimeGroups); unset: no limit */
  maxGroups?: number;
  registry?: Registry;
  /** inserts rows, filing those ClickHouse refuses (refused-rows.ts); resolves to how many were filed. Unset: a plain insert */
  insert?: (rows: RealtimeRow[]) => Promise<number>;
};

/**
 * The realtime view of one processor instance: sliding windows in memory, early
 * emissions of changed windows every refresh, an on-time emission when the watermark
 * passes a window's end. Windows closed by the watermark refuse later events, so a
 * published window is never back-filled; those events still reach the daily view.
 */
export function startRealtime(options: RealtimeOptions): Realtime {
  const { clickhouse, db, clock, logger, instance } = options;
  const lanes = options.reports
    .filter((report) => report.windows.length > 0)
    .map((report) => ({ report, store: new WindowStore(report), watermark: new Watermark(report.allowedLateness, options.idleMs), cap: groupCap(report, options.maxGroups ?? Number.POSITIVE_INFINITY) }));
  const stats: RealtimeStats = { lateRejected: 0, emitted: 0, openWindows: 0, groupsCut: 0 };
  const cutCounter = realtimeCutCounter(options.registry ?? metricsRegistry);
  // Latest unwritten emission per window: while ClickHouse is away only the newest
  // figure of each window is kept, so memory stays bounded by the windows themselves.
  let pending = new Map<string, RealtimeRow>();
  const controller = new AbortController();

  const add = (events: TidemarkEvent[]) => {
    const now = clock.now();
    for (const { report, store, watermark, cap } of lanes) {
      for (const event of events) {
        if (!report.types.includes(event.type)) continue;
        watermark.observe(event.occurredAt, now);
        if (!cap.admits(event)) {
          if (stats.groupsCut++ === 0) logger.warn({ report: report.name, limit: options.maxGroups }, 'realtime group limit reached: events of further groups are stored and in the daily view, not in the realtime view');
          cutCounter.inc({ report: report.name });
          continue;
        }
        if (store.add(event).rejected.length > 0) stats.lateRejected++;
      }
    }
  };

  const flush = async () => {
    const now = clock.now();
    for (const { store, watermark, cap } of lanes) {
      const closed = store.advance(watermark.tick(now));
      cap.release(store.watermark);
      for (const result of [...store.snapshotOpen(), ...closed]) {
        pending.set(`${result.report}/${result.size}/${result.start}/${result.group}`, realtimeRow(result, instance, now));
      }
    }
    stats.openWindows = lanes.reduce((n, lane) => n + lane.store.openWindows, 0);
    if (pending.size === 0) return;
    const batch = pending;
    pending = new Map();
    try {
      // a refused row is filed by `insert` and not kept pending: sending it again would fail every refresh
      const filed = options.insert ? await options.insert([...batch.values()]) : (await insertRealtime(clickhouse, db, [...batch.values()]), 0);
      if (filed > 0) logger.error({ rows: filed }, 'ClickHouse refused realtime window rows; filed in the DLQ (REFUSED_BY_SINK)');
    } catch (err) {
      for (const [key, row] of pending) batch.set(key, row);
      pending = batch;
      throw err;
    }
    stats.emitted += batch.size;
  };

  const loop = (async () => {
    if (lanes.length === 0) return;
    while (!controller.signal.aborted) {
      await sleep(options.refreshMs, controller.signal);
      try {
        await flush();
      } catch (err) {
        // rows stay pending and go with the next refresh
        logger.warn({ err: (err as Error).message }, 'realtime refresh failed; retrying');
      }
    }
  })();

  return {
    add,
    flush,
    stats,
    stop: async () => {
      controller.abort();
      await loop;
      await flush().catch((err: unknown) => logger.warn({ err }, 'final realtime flush failed'));
    },
  };
}
