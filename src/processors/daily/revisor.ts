import type { ClickHouseClient } from '@clickhouse/client';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { ReportConfig } from '../../core/config.ts';
import { sleep, type Clock } from '../../core/time.ts';
import { dailyFigures, type GroupFigure } from '../../sinks/clickhouse/daily-figures.ts';
import { insertRevisions, revisionRow } from '../../sinks/clickhouse/revisions-table.ts';
import { closeAtMs } from '../logic/business-day.ts';
import { nextRevision, type RevisionRecord } from '../logic/revisions.ts';
import { publishAmendedAlert } from './amended-alert.ts';
import { RevisionConflict, type DayRef, type RevisionStore } from './revision-store.ts';

export type RevisorDeps = {
  reports: ReportConfig[];
  store: RevisionStore;
  clickhouse: ClickHouseClient;
  db: string;
  js: JetStreamClient;
  clock: Clock;
  logger: Logger;
};

export type DayOutcome = { written: number; alerts: number };

/**
 * Brings one group to its next revision, if any. The KV compare-and-set decides
 * which process publishes revision n+1; the loser re-reads and finds nothing left to
 * do. A record is saved as unwritten, inserted into ClickHouse, then marked written,
 * so a crash in between is repaired by whoever handles the day next.
 */
async function reviseGroup(deps: RevisorDeps, report: ReportConfig, ref: DayRef, figure: GroupFigure, options: { replay: boolean }): Promise<DayOutcome> {
  const outcome: DayOutcome = { written: 0, alerts: 0 };
  const closeAt = closeAtMs(ref.day, report);
  for (;;) {
    const latest = await deps.store.latest(ref, figure.groupKey);
    let version = latest?.version ?? null;
    if (latest && !latest.value.written) {
      await insertRevisions(deps.clickhouse, deps.db, [revisionRow(ref.report, ref.day, figure.groupKey, latest.value.record)]);
      try {
        version = await deps.store.save(ref, figure.groupKey, { ...latest.value, written: true }, latest.version);
      } catch (err) {
        if (err instanceof RevisionConflict) continue;
        throw err;
      }
    }
    const previous: RevisionRecord | null = latest?.value.record ?? null;
    const decision = nextRevision(previous, figure, deps.clock.now(), closeAt, { replay: options.replay });
    if (!decision) return outcome;
    let savedVersion: number;
    try {
      savedVersion = await deps.store.save(ref, figure.groupKey, { record: decision.record, written: false }, version);
    } catch (err) {
      if (err instanceof RevisionConflict) continue;
      throw err;
    }
    await insertRevisions(deps.clickhouse, deps.db, [revisionRow(ref.report, ref.day, figure.groupKey, decision.record)]);
    if (decision.alert && previous) {
      await publishAmendedAlert(deps.js, { report: ref.report, day: ref.day, groupKey: figure.groupKey, previous, record: decision.record });
      outcome.alerts++;
    }
    outcome.written++;
    try {
      await deps.store.save(ref, figure.groupKey, { record: decision.record, written: true }, savedVersion);
    } catch (err) {
      // someone else already repaired it: the row is in ClickHouse either way
      if (!(err instanceof RevisionConflict)) throw err;
    }
    return outcome;
  }
}

/** Recomputes every group of a report's day from the event store and publishes what changed. */
export async function reviseDay(deps: RevisorDeps, ref: DayRef, options: { replay: boolean } = { replay: false }): Promise<DayOutcome> {
  const report = deps.reports.find((r) => r.name === ref.report);
  const total: DayOutcome = { written: 0, alerts: 0 };
  if (!report) return total;
  const figures = await dailyFigures(deps.clickhouse, deps.db, report, ref.day);
  for (const figure of figures) {
    const outcome = await reviseGroup(deps, report, ref, figure, options);
    total.written += outcome.written;
    total.alerts += outcome.alerts;
  }
  const closeAt = closeAtMs(ref.day, report);
  if (deps.clock.now() < closeAt) await deps.store.setOpen(ref, closeAt);
  else await deps.store.clearOpen(ref);
  return total;
}

export type Revisor = { stop: () => Promise<void>; tick: () => Promise<DayOutcome> };

/**
 * The clock-driven half of the daily view: folds dirty days into revisions once they
 * have been dirty for the report's coalescing interval (so a burst of late events
 * becomes one revision), and finalises open days whose close time has passed, even
 * when no event flows.
 */
export function startRevisor(deps: RevisorDeps, options: { intervalMs?: number } = {}): Revisor {
  const intervalMs = options.intervalMs ?? 200;
  const firstSeen = new Map<string, number>();
  const controller = new AbortController();

  const coalesceOf = (name: string) => deps.reports.find((r) => r.name === name)?.coalesce ?? 0;

  const tick = async (): Promise<DayOutcome> => {
    const total: DayOutcome = { written: 0, alerts: 0 };
    const add = (o: DayOutcome) => {
      total.written += o.written;
      total.alerts += o.alerts;
    };
    const now = deps.clock.now();
    const dirty = await deps.store.dirtyDays();
    const live = new Set<string>();
    for (const { value: ref, version } of dirty) {
      const id = `${ref.report}.${ref.day}`;
      live.add(id);
      const seen = firstSeen.get(id) ?? now;
      firstSeen.set(id, seen);
      if (now - seen < coalesceOf(ref.report)) continue;
      add(await reviseDay(deps, ref));
      if (await deps.store.clearDirty(ref, version)) firstSeen.delete(id);
    }
    for (const id of firstSeen.keys()) if (!live.has(id)) firstSeen.delete(id);
    for (const open of await deps.store.openDays()) {
      if (open.closeAt <= deps.clock.now() && !live.has(`${open.report}.${open.day}`)) add(await reviseDay(deps, open));
    }
    return total;
  };

  const loop = (async () => {
    while (!controller.signal.aborted) {
      try {
        await tick();
      } catch (err) {
        deps.logger.error({ err }, 'revisor tick failed; retrying');
      }
      await sleep(intervalMs, controller.signal);
    }
  })();

  return {
    tick,
    stop: async () => {
      controller.abort();
      await loop;
    },
  };
}
