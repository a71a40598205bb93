import type { ClickHouseClient } from '@clickhouse/client';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { ReportConfig } from '../../core/config.ts';
import { runLoop } from '../../core/loop.ts';
import type { Clock } from '../../core/time.ts';
import type { GroupFigure } from '../../sinks/clickhouse/daily-figures.ts';
import { insertOrFile } from '../../sinks/clickhouse/refused-rows.ts';
import { insertRevisions, revisionRow } from '../../sinks/clickhouse/revisions-table.ts';
import { closeAtMs } from '../../core/business-day.ts';
import { nextRevision, type RevisionRecord } from '../logic/revisions.ts';
import { publishAmendedAlert } from './amended-alert.ts';
import { daysDue, type DayWait } from '../logic/revision-schedule.ts';
import { type DayRef, type RevisionStore } from './revision-store.ts';
import { isCasConflict } from '../../nats/cas.ts';
import { arrivalMarks, type ArrivalMark } from './arrival-mark.ts';
import { computeDay } from './day-compute.ts';

export type RevisorDeps = {
  reports: ReportConfig[];
  store: RevisionStore;
  clickhouse: ClickHouseClient;
  db: string;
  js: JetStreamClient;
  clock: Clock;
  logger: Logger;
  /** how far EVENTS is stored (default: read from the processor consumer) */
  marks?: () => Promise<ArrivalMark | null>;
};

export type DayOutcome = { written: number; alerts: number };

/** A group's new record, saved in KV as not yet written to ClickHouse. */
type Claimed = { groupKey: string; record: RevisionRecord; version: number; alert: boolean; previous: RevisionRecord | null };

/** Runs `work` over `items` with at most `limit` at once. */
async function eachLimit<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(lanes);
}

/**
 * Claims a group's next revision, if any. The KV compare-and-set decides which process
 * publishes revision n+1; the loser re-reads and finds nothing left to do. A record
 * still marked unwritten (its writer crashed before ClickHouse had it) is handed back
 * for repair before anything new is decided.
 */
async function claimGroup(deps: RevisorDeps, report: ReportConfig, ref: DayRef, figure: GroupFigure, options: { replay: boolean }, repairs: Claimed[]): Promise<Claimed | null> {
  const closeAt = closeAtMs(ref.day, report);
  for (;;) {
    const latest = await deps.store.latest(ref, figure.groupKey);
    if (latest && !latest.value.written && !repairs.some((r) => r.groupKey === figure.groupKey)) {
      // its alert may not have gone out either: the id is the revision's, so a copy that did is dropped by JetStream's dedup
      repairs.push({ groupKey: figure.groupKey, record: latest.value.record, version: latest.version, alert: latest.value.amends !== undefined, previous: latest.value.amends ?? null });
    }
    const previous = latest?.value.record ?? null;
    const decision = nextRevision(previous, figure, deps.clock.now(), closeAt, { replay: options.replay });
    if (!decision) return null;
    try {
      const version = await deps.store.save(ref, figure.groupKey, { record: decision.record, written: false, ...(decision.alert ? { amends: previous } : {}) }, latest?.version ?? null);
      // a group first seen after close alerts too (previous null): the day was final without it
      return { groupKey: figure.groupKey, record: decision.record, version, alert: decision.alert, previous };
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
  }
}

const GROUP_CONCURRENCY = 64;
const DAY_CONCURRENCY = 4;

/**
 * What one revision of a day did. `events`: event identities it read (the new ones, or
 * the whole day when it recomputed it); `scanned`: rows its reads went through;
 * `hwm`/`delivered`: the arrival mark it read
 * (null: none, the day was read whole as it stands, which takes in every mark before).
 */
export type RevisionOutcome = DayOutcome & { events: number; scanned: number; scanMs: number; mode: string; hwm: number | null; delivered: number | null };

/**
 * Brings a report day's revisions up to date: adds what arrived since the day's stored
 * state (day-compute.ts) and publishes what changed: claims in KV (concurrently per
 * group), then one ClickHouse insert for the whole day, then the new state, then the
 * records are marked written and amendments alerted, and last the new state is stored.
 * A crash between the steps leaves the state as it was, so the next revision reads the
 * same rows again, finds the unwritten records and inserts them again (the table's
 * replacing key makes that harmless). When nothing was taken in and the day is not closing,
 * there is nothing to decide.
 */
export async function reviseDay(deps: RevisorDeps, ref: DayRef, options: { replay: boolean } = { replay: false }): Promise<RevisionOutcome> {
  const report = deps.reports.find((r) => r.name === ref.report);
  if (!report) return { written: 0, alerts: 0, events: 0, scanned: 0, scanMs: 0, mode: 'none', hwm: null, delivered: null };
  const mark = await (deps.marks ?? arrivalMarks(deps.js))();
  const scanStarted = performance.now();
  const computed = await computeDay(deps.clickhouse, deps.db, report, ref.day, mark, options);
  const scanMs = performance.now() - scanStarted;
  const closeAt = closeAtMs(ref.day, report);
  // a day read whole as it stands took in every mark made before: no arrival mark to wait for
  const marked = computed.mode !== 'unmarked';
  const base = { events: computed.rowsRead, scanned: computed.rowsScanned, scanMs, mode: computed.mode, hwm: marked ? (mark?.hwm ?? null) : null, delivered: marked ? (mark?.delivered ?? null) : null };
  if (!computed.changed && deps.clock.now() < closeAt) return { written: 0, alerts: 0, ...base };
  const figures: GroupFigure[] = computed.figures;
  const repairs: Claimed[] = [];
  const claimed: Claimed[] = [];
  await eachLimit(figures, GROUP_CONCURRENCY, async (figure) => {
    const claim = await claimGroup(deps, report, ref, figure, options, repairs);
    if (claim) claimed.push(claim);
  });
  const toWrite = [...repairs.filter((r) => !claimed.some((c) => c.groupKey === r.groupKey)), ...claimed];
  // a revision ClickHouse refuses (a constraint, say) is filed in the DLQ and counts as written: retrying it would stall the day for ever
  const rows = [...repairs, ...claimed].map((c) => revisionRow(report, ref.day, c.groupKey, c.record));
  const filed = await insertOrFile(deps.js, 'report_revisions', rows, (part) => insertRevisions(deps.clickhouse, deps.db, part), deps.clock.now());
  if (filed > 0) deps.logger.error({ report: ref.report, day: ref.day, rows: filed }, 'ClickHouse refused revision rows; filed in the DLQ (REFUSED_BY_SINK)');
  let alerts = 0;
  // a repaired record that a newer revision of its group supersedes in this pass still owes its own alert, first
  await eachLimit(repairs.filter((r) => r.alert && !toWrite.includes(r)), GROUP_CONCURRENCY, async (r) => {
    await publishAmendedAlert(deps.js, { report: ref.report, day: ref.day, groupKey: r.groupKey, previous: r.previous, record: r.record });
    alerts++;
  });
  await eachLimit(toWrite, GROUP_CONCURRENCY, async (c) => {
    if (c.alert) {
      await publishAmendedAlert(deps.js, { report: ref.report, day: ref.day, groupKey: c.groupKey, previous: c.previous, record: c.record });
      alerts++;
    }
    try {
      await deps.store.save(ref, c.groupKey, { record: c.record, written: true }, c.version);
    } catch (err) {
      // someone else moved the group on meanwhile: the row is in ClickHouse either way
      if (!isCasConflict(err)) throw err;
    }
  });
  // last: until the state is stored, the next revision reads these rows again and finds what is still unwritten
  await computed.commit();
  if (deps.clock.now() < closeAt) await deps.store.setOpen(ref, closeAt);
  else await deps.store.clearOpen(ref);
  return { written: claimed.length, alerts, ...base };
}

const dayId = (ref: DayRef): string => `${ref.report}.${ref.day}`;

export type Revisor = { stop: () => Promise<void>; stats: DayOutcome };

/**
 * The clock-driven half of the daily view: folds dirty days into revisions once they
 * have been dirty for the report's coalescing interval (so a burst of late events
 * becomes one revision), and finalises open days whose close time has passed, even
 * when no event flows. Each day is revised on its own, a few at once, so a small late
 * day never waits behind the recomputation of today's big one (when: see
 * logic/revision-schedule.ts).
 */
export function startRevisor(given: RevisorDeps, options: { intervalMs?: number } = {}): Revisor {
  const deps: RevisorDeps = { marks: arrivalMarks(given.js), ...given };
  const intervalMs = options.intervalMs ?? 50;
  // since when each dirty day's unrevised marks have waited: the first mark, or the start
  // of the last revision (marks after it were maybe not in its scan)
  const waitingSince = new Map<string, number>();
  // the rows each day's last revision went through and how long its scan took
  const lastScan = new Map<string, { rows: number; ms: number }>();
  const inFlight = new Map<string, Promise<void>>();
  const stats: DayOutcome = { written: 0, alerts: 0 };

  const coalesceOf = (name: string) => deps.reports.find((r) => r.name === name)?.coalesce ?? 0;

  // per dirty day: the mark version a revision last saw, and how far EVENTS had been delivered then
  const targets = new Map<string, { version: number; delivered: number }>();

  /**
   * Clears a day's dirty mark once a revision has taken in everything marked up to
   * `version`: the events of those marks were delivered before the revision read the
   * arrival mark, so they are in once a revision's ack floor reaches that delivered
   * sequence (this one, or a later one of the same mark version).
   */
  const settle = async (ref: DayRef, version: number, outcome: RevisionOutcome): Promise<void> => {
    const id = dayId(ref);
    if (outcome.hwm !== null && outcome.delivered !== null) {
      const seen = targets.get(id);
      const target = seen && seen.version === version ? seen : { version, delivered: outcome.delivered };
      targets.set(id, target);
      if (outcome.hwm < target.delivered) return;
    }
    targets.delete(id);
    // cleared only if no event marked the day again while it was being revised
    const cleared = await deps.store.clearDirty(ref, version);
    if (cleared) waitingSince.delete(id);
    deps.logger.debug({ ...ref, version, cleared }, 'dirty mark taken in');
  };

  const launch = (ref: DayRef, after?: (outcome: RevisionOutcome) => Promise<void>): boolean => {
    const id = dayId(ref);
    if (inFlight.has(id) || inFlight.size >= DAY_CONCURRENCY) return false;
    const run = (async () => {
      const outcome = await reviseDay(deps, ref);
      deps.logger.debug({ ...ref, mode: outcome.mode, read: outcome.events, ms: Math.round(outcome.scanMs), hwm: outcome.hwm, delivered: outcome.delivered, written: outcome.written }, 'day revised');
      // a whole-day read happens once per state (first revision, replay, conflicting copy): only repeated reads pace the
      // day, by the rows they go through (a delta whose arrivals are spread over the whole day costs a read of it)
      lastScan.set(id, { rows: outcome.mode === 'full' ? 0 : outcome.scanned, ms: outcome.scanMs });
      stats.written += outcome.written;
      stats.alerts += outcome.alerts;
      await after?.(outcome);
    })()
      .catch((err: unknown) => deps.logger.error({ err, ...ref }, 'revising a day failed; retrying'))
      .finally(() => inFlight.delete(id));
    inFlight.set(id, run);
    return true;
  };

  const tick = async (): Promise<void> => {
    const now = deps.clock.now();
    const dirty = await deps.store.dirtyDays();
    const live = new Set(dirty.map(({ value }) => dayId(value)));
    for (const id of waitingSince.keys()) {
      if (live.has(id)) continue;
      waitingSince.delete(id);
      lastScan.delete(id);
      targets.delete(id);
    }
    for (const { value: ref } of dirty) if (!waitingSince.has(dayId(ref))) waitingSince.set(dayId(ref), now);
    const waits: DayWait[] = dirty.map(({ value: ref }) => {
      const id = dayId(ref);
      return { id, waitingSince: waitingSince.get(id)!, coalesceMs: coalesceOf(ref.report), lastScan: lastScan.get(id), inFlight: inFlight.has(id) };
    });
    const due = new Set(daysDue(waits, now).map((day) => day.id));
    for (const { value: ref, version } of dirty) {
      const id = dayId(ref);
      if (!due.has(id)) continue;
      const launched = launch(ref, (outcome) => settle(ref, version, outcome));
      // a day marked all the time (today, under load) is revised once per interval, not back to back
      if (launched) waitingSince.set(id, now);
    }
    for (const open of await deps.store.openDays()) {
      if (open.closeAt <= deps.clock.now() && !live.has(dayId(open))) launch(open);
    }
  };

  const loop = runLoop({ name: 'revisor tick', step: tick, everyMs: intervalMs, logger: deps.logger });

  return {
    stats,
    stop: async () => {
      await loop.stop();
      await Promise.all(inFlight.values());
    },
  };
}
