import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from 'pino';
import type { MonitorConfig, ReportConfig } from '../core/config.ts';
import type { Clock } from '../core/time.ts';
import type { Alert } from './alerts.ts';
import { advanceDaily, initialDaily, type DailyState } from './daily.ts';
import { advanceDeadline, daysToCheck, initialDeadline, type DeadlineState } from './deadlines.ts';
import { fireDueGroup, type DelayedState } from './delayed.ts';
import { advanceEvery, initialEvery, type EveryState } from './every.ts';
import type { AlertPublisher } from '../nats/alert-guard.ts';
import type { MonitorMetrics } from './metrics.ts';
import { delayedDue, dailyDue, deadlineDue, everyDue, wakeAt, type Due } from './next-due.ts';
import { flushOutbox } from './outbox.ts';
import { idleExpiryOf, isIdle, type Fed } from './idle.ts';
import { groupProgress } from './report-status.ts';
import { businessDay, dailyDeadline, firstDayDueAfter, previousDay, reportDeadline } from './schedule.ts';
import type { Sla } from './sla.ts';
import { deadlineKey, stateKey, tokenSource, type MonitorState } from './state.ts';

export type TickDeps = {
  slas: Sla[];
  reports: ReportConfig[];
  monitor: MonitorConfig;
  state: MonitorState;
  publish: AlertPublisher;
  clickhouse: ClickHouseClient;
  db: string;
  clock: Clock;
  metrics: MonitorMetrics;
  logger: Logger;
  /** when the first monitor started: expectations with no history begin there */
  epoch: number;
  /** when idle sources were last looked for (clock time; kept across ticks) */
  idleSweep: { at: number };
};

type WithOutbox = { outbox: Alert[] };

/** Applies a transition to one document and publishes whatever it put in the outbox; returns the document as it now stands (null when there is none). */
async function advance<T extends WithOutbox>(deps: TickDeps, key: string, init: () => T | null, change: (s: T) => T | null): Promise<T | null> {
  const known = deps.state.entries.get(key)?.value as T | undefined;
  // after sync() the mirror is current: no change there means none is due
  if (known && known.outbox.length === 0 && change(known) === null) return known;
  const written = await deps.state.mutate<T>(key, init, change);
  if (written) await flushOutbox(deps, key, written.outbox);
  return written ?? (deps.state.entries.get(key)?.value as T | undefined) ?? null;
}

/** Sources an SLA has state for, under one key kind: the sources seen, plus its literal one. */
function sourcesOf(deps: TickDeps, kind: 'd' | 'e' | 'y', sla: Sla): string[] {
  const prefix = `${kind}.${sla.id}.`;
  const sources = new Set<string>();
  for (const key of deps.state.entries.keys()) if (key.startsWith(prefix)) sources.add(tokenSource(key.slice(prefix.length)));
  if (kind !== 'd' && sla.literalSource !== null) sources.add(sla.literalSource);
  return [...sources];
}

/**
 * One pass of the clock-driven checks, judged against the watermark (how far every
 * instance has merged EVENTS) for event-driven expectations and against the clock
 * for report deadlines. Every instance runs it; compare-and-set lets one of them
 * apply each transition, and the guard publishes each alert once. Returns the clock
 * instant at which the next check could raise something (next-due.ts), so the loop
 * wakes then instead of at a later tick.
 */
export async function runTick(deps: TickDeps, watermark: number, caughtUp: boolean): Promise<number> {
  const { state, monitor } = deps;
  await state.sync();
  const dues: Due[] = [];
  const noteDue = <T>(of: (s: T) => Due) => (s: T | null) => {
    if (s) dues.push(of(s));
  };
  // one failing check (ClickHouse down for the deadlines, say) must not hold back the others
  const guarded = async (what: string, check: () => Promise<unknown>) => {
    try {
      await check();
    } catch (err) {
      deps.logger.error({ err, check: what }, 'monitor check failed; retried next tick');
    }
  };

  for (const [key, entry] of state.entries) {
    const outbox = (entry.value as Partial<WithOutbox> | null)?.outbox;
    if (Array.isArray(outbox) && outbox.length) await guarded(key, () => flushOutbox(deps, key, outbox));
  }

  for (const sla of deps.slas) {
    if (sla.maxDelay !== undefined) {
      const maxDelayMs = sla.maxDelay;
      for (const source of sourcesOf(deps, 'd', sla)) {
        const ctx = { sla: sla.id, source, maxDelayMs, now: deps.clock.now(), watermark, groupWaitMs: monitor.groupWait, groupIntervalMs: monitor.groupInterval, resolveAfterMs: monitor.resolveAfter };
        const key = stateKey('d', sla.id, source);
        await guarded(key, () => advance<DelayedState>(deps, key, () => null, (s) => fireDueGroup(s, ctx)).then(noteDue((s) => delayedDue(s, ctx))));
      }
    }
    if (sla.every !== undefined) {
      const every = sla.every;
      for (const source of sourcesOf(deps, 'e', sla)) {
        const key = stateKey('e', sla.id, source);
        await guarded(key, () => advance<EveryState>(deps, key, () => initialEvery(deps.epoch, every), (s) => advanceEvery(s, { sla: sla.id, source, every, watermark })).then(noteDue((s) => everyDue(s, every))));
      }
    }
    if (sla.dailyBy !== undefined) {
      const by = sla.dailyBy;
      const deadlineOf = (day: string) => dailyDeadline(day, by, sla.timeZone);
      for (const source of sourcesOf(deps, 'y', sla)) {
        const key = stateKey('y', sla.id, source);
        await guarded(key, () =>
          advance<DailyState>(
            deps,
            key,
            () => initialDaily(previousDay(firstDayDueAfter(deps.epoch, sla.timeZone, deadlineOf))),
            (s) => advanceDaily(s, { sla: sla.id, source, watermark, deadlineOf }),
          ).then(noteDue((s) => dailyDue(s, deadlineOf))));
      }
    }
    for (const deadline of sla.deadlines) await guarded(deadlineKey(sla.id, deadline.report, deadline.status), () => checkDeadline(deps, sla, deadline).then((due) => due && dues.push(due)));
  }
  await guarded('idle sources', () => forgetIdle(deps, watermark));
  return wakeAt(dues, deps.clock.now(), watermark, caughtUp);
}

/** A sweep reads every key of the state (about 1 µs each): at most once a minute, or a hundredth of the shortest expiry. */
const SWEEP_MS = 60_000;

/**
 * Forgets the state of glob SLAs' sources that sent nothing for their idle expiry,
 * after the checks above had their last say. One pass over the state for every SLA.
 */
async function forgetIdle(deps: TickDeps, watermark: number): Promise<void> {
  const expiries = new Map(deps.slas.filter((s) => s.literalSource === null).map((s) => [s.id, idleExpiryOf(s, deps.monitor)]));
  if (expiries.size === 0) return;
  const now = deps.clock.now();
  const sweep = deps.idleSweep;
  if (now - sweep.at < Math.min(SWEEP_MS, Math.min(...expiries.values()) / 100)) return;
  sweep.at = now;
  const idle: Array<{ key: string; revision: number; sla: string }> = [];
  for (const [key, entry] of deps.state.entries) {
    // `d.<sla>.<source>`, `e.…`, `y.…`; SLA ids hold no dot
    if (key[1] !== '.' || (key[0] !== 'd' && key[0] !== 'e' && key[0] !== 'y')) continue;
    const sla = key.slice(2, key.indexOf('.', 2));
    const expiry = expiries.get(sla);
    if (expiry !== undefined && isIdle(entry.value as Partial<Fed> | null, watermark, expiry)) idle.push({ key, revision: entry.revision, sla });
  }
  const forgotten = new Map<string, number>();
  for (const { key, revision, sla } of idle) if (await deps.state.forget(key, revision)) forgotten.set(sla, (forgotten.get(sla) ?? 0) + 1);
  for (const [sla, states] of forgotten) {
    deps.metrics.sourcesForgotten(sla, states);
    deps.logger.info({ sla, states, idleMs: expiries.get(sla) }, 'forgot the SLA state of sources idle for longer than monitor.sourceIdleExpiry');
  }
}

async function checkDeadline(deps: TickDeps, sla: Sla, deadline: Sla['deadlines'][number]): Promise<Due | null> {
  const report = deps.reports.find((r) => r.name === deadline.report);
  if (!report) return null;
  const now = deps.clock.now();
  const deadlineOf = (day: string) => reportDeadline(day, report.timeZone, deadline.by);
  const key = deadlineKey(sla.id, report.name, deadline.status);
  // from the day the first monitor started: earlier days may simply predate the pipeline
  const init = () => {
    const due = firstDayDueAfter(deps.epoch, report.timeZone, deadlineOf);
    const started = businessDay(deps.epoch, report.timeZone);
    return initialDeadline(previousDay(due > started ? due : started));
  };
  const known = (deps.state.entries.get(key)?.value as DeadlineState | undefined) ?? init();
  const days = daysToCheck(known, { now, deadlineOf });
  if (days.length === 0 && deps.state.entries.has(key)) return deadlineDue(known, deadlineOf);
  const progress = await groupProgress(deps.clickhouse, deps.db, report.name, deadline.status, days);
  const asked = new Set(days);
  const ctx = { sla: sla.id, report: report.name, status: deadline.status, now, deadlineOf };
  // another instance may have moved the state on since the read: judge only days whose figures were fetched
  const after = await advance<DeadlineState>(deps, key, init, (s) => (daysToCheck(s, ctx).every((d) => asked.has(d)) ? advanceDeadline(s, ctx, progress) : null));
  return after && deadlineDue(after, deadlineOf);
}
