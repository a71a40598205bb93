import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from 'pino';
import type { ReportConfig } from '../../core/config.ts';
import type { TidemarkEvent } from '../../core/envelope.ts';
import { runLoop } from '../../core/loop.ts';
import { sleep, type Clock } from '../../core/time.ts';
import { inRanges, type SeqRange } from '../../nats/seq-ranges.ts';
import { checkpointRow, insertFence, insertRealtime, numbered, otherCheckpoints, realtimeRow, refusalRow, type CommittedFigures, type RealtimeRow } from '../../sinks/clickhouse/realtime-table.ts';
import { SettledClock } from '../logic/acked-prefix.ts';
import { disorderQuantile } from './disorder.ts';
import { RealtimeFenced, RealtimeStopped, takenForDead, type Arbiter } from './fence.ts';
import type { ClaimDecision } from './gate-claims.ts';
import { Folds, type FoldOptions } from './folds.ts';
import { realtimeMetricsFor, type RealtimeMetrics } from './metrics.ts';

export type RealtimeStats = { lateRejected: number; emitted: number; openWindows: number; folded: number; skipped: number; duplicates: number; groupsCut: number };

export type Realtime = {
  /**
   * Takes the events of one EVENTS message as it arrives. A first delivery is folded at
   * once; a redelivered one waits at the gate until the other instances' checkpoints say
   * whether one of them already folded it. Call it synchronously as the client reads the
   * message: the gate's reasoning rests on first deliveries being folded in the order the
   * connection brings them, before any server answer that came after them.
   */
  arrive: (seq: number, redelivered: boolean, events: readonly TidemarkEvent[]) => void;
  /**
   * Resolves once the realtime view's part of these EVENTS messages is durable: each one
   * folded (or found folded elsewhere) and a checkpoint naming it written. The processor
   * acks only then, so an acked message is never missing from the view after a crash.
   */
  durable: (seqs: readonly number[]) => Promise<void>;
  /** Registers this instance with the arbiter; before the processor consumes anything. */
  start: () => Promise<void>;
  /** the instance id rows are written under now (a fenced instance goes on under a new one) */
  readonly instance: string;
  /** Emits what is due now (the loop calls it every refresh; tests and shutdown call it directly). */
  flush: () => Promise<void>;
  stats: RealtimeStats;
  stop: () => Promise<void>;
};

export type RealtimeOptions = FoldOptions & {
  reports: ReportConfig[];
  clickhouse: ClickHouseClient;
  db: string;
  clock: Clock;
  logger: Logger;
  instance: string;
  refreshMs: number;
  /** an instance whose checkpoint is older than this is taken for dead (realtime_latest uses the same) */
  livenessMs: number;
  /**
   * The EVENTS consumer's ack floor and the highest sequence it has delivered. Folded
   * sequences at or below the floor are forgotten, and a message's event times move the
   * watermarks only once the floor covers it (acked-prefix.ts). Without it (tests without
   * NATS): nothing is forgotten, the watermarks move at once.
   */
  ackFloor?: () => Promise<ConsumerProgress>;
  metrics?: RealtimeMetrics;
  /** inserts rows, filing those ClickHouse refuses (refused-rows.ts); resolves to how many were filed. Unset (tests without NATS): a plain insert; the processor always sets it */
  insert?: (rows: RealtimeRow[]) => Promise<number>;
  /**
   * Commits each checkpoint and fences instances taken for dead (fence.ts); the processor
   * always sets it. Unset (tests without NATS): a written checkpoint counts as committed,
   * and the others' are read from ClickHouse.
   */
  arbiter?: Arbiter;
};

export type ConsumerProgress = { floor: number; delivered: number };

type Arrival = { seq: number; redelivered: boolean; events: readonly TidemarkEvent[]; at: number };

/** Clock difference between processor hosts that a checkpoint's time is allowed. */
const CLOCK_SKEW_MS = 1_000;
/**
 * How often the ack floor is asked for: folded sequences below it are forgotten, the event
 * times of messages it covers move the watermarks, and its answer moves `since` (fence.ts):
 * a redelivery at another processor waits for a checkpoint taken after one asked 1 s after
 * it arrived, so about 2–3 s.
 */
const ACK_FLOOR_EVERY_MS = 1_000;
/** How often the per-source disorder seen is logged (and at stop). */
const DISORDER_LOG_MS = 10_000;
/** How often an instance with nothing new still writes its checkpoint, as a sign of life for realtime_latest. */
const HEARTBEAT_MS = 1_000;
/** Committed figures of refusal rows kept at most (they stay open as long as late events come); past it the oldest go. */
const MAX_COMMITTED_REFUSALS = 10_000;

const figuresOf = (row: RealtimeRow): CommittedFigures => ({ events: row.events, measures: row.measures, parts: row.parts, uniq_values: row.uniq_values, late_refused: row.late_refused });

/**
 * The realtime view of one processor instance: sliding windows in memory, early
 * emissions of changed windows every refresh, an on-time emission when the watermark
 * passes a window's end. Windows closed by the watermark refuse later events, so a
 * published window is never back-filled; those events still reach the daily view, and
 * the refusals are counted per window (late_refused) and in a metric.
 *
 * Exactly once across a crash: every write carries, in the same insert, this instance's
 * checkpoint of the EVENTS sequences folded into the rows it writes. A message that
 * comes again after its holder died is looked up in the checkpoints of the others and
 * folded only if none has it; one folded but never written is folded again, as it must.
 */
export function startRealtime(options: RealtimeOptions): Realtime {
  const { clickhouse, db, clock, logger, arbiter } = options;
  let instance = options.instance;
  let incarnation = 0;
  const metrics = options.metrics ?? realtimeMetricsFor();
  const newFolds = () => new Folds(options.reports, { ...options, untilAcked: options.ackFloor !== undefined });
  let folds = newFolds();
  const stats: RealtimeStats = { lateRejected: 0, emitted: 0, openWindows: 0, folded: 0, skipped: 0, duplicates: 0, groupsCut: 0 };
  // Latest unwritten emission per window: while ClickHouse is away only the newest
  // figure of each window is kept, so memory stays bounded by the windows themselves.
  let pending = new Map<string, RealtimeRow>();
  let writes = 0;
  let lastWriteAt = -Infinity;
  let lastWatermarks = '';
  let floor = 0;
  let floorAt = -Infinity;
  const gate: Arrival[] = [];
  let resolving: Promise<void> | undefined;
  const controller = new AbortController();

  // sequence → number of checkpoints taken when it was decided: the next one names it
  const decided = new Map<number, number>();
  // the number of the last committed checkpoint: what it names is durable
  let durableWrites = 0;
  const waiters: Array<{ seqs: readonly number[]; resolve: () => void; reject: (err: Error) => void }> = [];
  // per row key, what this instance's last committed checkpoint holds of it (prev_* of the next rows), and the rows sent since
  const committedRows = new Map<string, CommittedFigures>();
  const uncommitted = new Map<string, RealtimeRow>();
  // sequences folded into panes a fence dropped (or waiting at its gate then): no batch holding one is acked
  // until a later delivery of it is decided here, as one of them may be the only copy this process gets
  const dropped = new Set<number>();
  // stopped: nothing more is written, so what is not durable yet never will be here
  let stopped = false;
  // registered with the arbiter under `instance`: until then first deliveries are dropped, redeliveries wait at the gate
  let joined = arbiter === undefined;
  // when the latest ack-floor request the consumer's server answered was sent: the next checkpoint's `since` (0: none yet)
  let answeredAt = options.ackFloor ? 0 : undefined;
  // when the current instance id registered: with `since`, how long it has gone unanswered (takenForDead)
  let joinedAt = 0;
  const fencesWritten = new Set<string>();
  const isDurable = (seq: number) => {
    const at = decided.get(seq);
    if (at === undefined) return !gate.some((a) => a.seq === seq);
    return durableWrites > at;
  };
  const wakeWaiters = () => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const waiter = waiters[i]!;
      if (!waiter.seqs.every(isDurable)) continue;
      for (const seq of waiter.seqs) if ((decided.get(seq) ?? Infinity) < durableWrites) decided.delete(seq);
      waiters.splice(i, 1);
      waiter.resolve();
    }
  };
  const durable = (seqs: readonly number[]): Promise<void> => {
    if (folds.empty) return Promise.resolve();
    // a later delivery of a dropped message waiting at the gate decides it for every batch holding it
    if (seqs.some((seq) => dropped.has(seq) && !gate.some((a) => a.seq === seq))) return Promise.reject(new RealtimeFenced(instance));
    if (seqs.every(isDurable)) {
      for (const seq of seqs) decided.delete(seq);
      return Promise.resolve();
    }
    if (stopped) return Promise.reject(new RealtimeStopped(instance));
    return new Promise((resolve, reject) => waiters.push({ seqs, resolve, reject }));
  };

  let skippedElsewhere = 0;
  const fold = (arrival: Arrival, elsewhere: readonly SeqRange[]) => {
    decided.set(arrival.seq, writes);
    dropped.delete(arrival.seq);
    if (arrival.redelivered && inRanges(elsewhere, arrival.seq)) {
      skippedElsewhere++;
      metrics.skipped(1);
      return;
    }
    if (!folds.fold(arrival.seq, arrival.events, clock.now(), arrival.redelivered)) metrics.skipped(1);
  };

  /**
   * Folds what waits at the gate. A redelivered message is decided once every live
   * instance has committed a checkpoint whose `since` is after it arrived here (fence.ts):
   * the instance it was first delivered to folds it on arrival, however late that arrival
   * is (its process paused, its connection slow), and the consumer's answer to a request
   * sent after the redelivery comes behind it on that connection, so the checkpoint taken
   * after that answer names it; or, once it is acked, the ack floor covers it. An instance
   * taken for dead is fenced first, and its last checkpoint is all it ever wrote. One that
   * none of them has is folded only under a claim this instance holds (gate-claims.ts): a
   * redelivery held past ackWait is delivered once more, and another gate may hold it now.
   */
  const resolve = async (): Promise<void> => {
    while (gate.length > 0) {
      if (controller.signal.aborted) return;
      if (!joined) {
        await sleep(options.refreshMs);
        continue;
      }
      const self = instance;
      let round: GateRound;
      try {
        round = await readGate(self);
      } catch (err) {
        if (controller.signal.aborted) return;
        logger.warn({ err: (err as Error).message, waiting: gate.length }, 'cannot read realtime checkpoints; redelivered messages wait');
        await sleep(options.refreshMs * 4);
        continue;
      }
      // fenced meanwhile: the new instance decides again once registered (a claim of the old id is void)
      if (!joined || instance !== self) continue;
      const { ready, elsewhere, mine } = round;
      const done = new Set<Arrival>();
      for (const arrival of ready) {
        // claimed by another instance that stands: it waits until that one's checkpoint (or the floor) has it
        if (mine && !inRanges(elsewhere, arrival.seq) && !mine.has(arrival.seq)) continue;
        fold(arrival, elsewhere);
        done.add(arrival);
      }
      let kept = 0;
      for (const arrival of gate) if (!done.has(arrival)) gate[kept++] = arrival;
      gate.length = kept;
      if (gate.length > 0) await sleep(options.refreshMs);
    }
  };

  /** `ready`: the arrivals every live instance's checkpoint can speak for; `mine`: unset without an arbiter (no claims). */
  type GateRound = { ready: Arrival[]; elsewhere: SeqRange[]; mine?: Set<number> };
  const readGate = async (self: string): Promise<GateRound> => {
    // the checkpoints before the ack floor: a checkpoint forgets a sequence only once the
    // floor covers it, so a floor read after a checkpoint without it covers it
    const others = arbiter ? await committedOthers(arbiter, self) : await writtenOthers(self);
    const acked = options.ackFloor ? (await options.ackFloor()).floor : 0;
    const writtenSince = Math.min(...others.liveSince.map((at) => at - CLOCK_SKEW_MS));
    // at or below the ack floor, a message was acked, so folded on arrival by whoever acked it
    const elsewhere: SeqRange[] = [...(acked > 0 ? [[1, acked] as SeqRange] : []), ...others.folded];
    const ready = gate.filter((arrival) => !arrival.redelivered || arrival.at <= writtenSince);
    const unnamed = ready.filter((arrival) => !inRanges(elsewhere, arrival.seq)).map((arrival) => arrival.seq);
    if (!arbiter) return { ready, elsewhere };
    let claims: ClaimDecision = { mine: [], acked: 0 };
    if (unnamed.length > 0 && joined && instance === self) claims = await arbiter.claim(self, unnamed, (holder) => !others.final.has(holder), acked);
    if (claims.acked > 0) elsewhere.push([1, claims.acked]);
    return { ready, elsewhere, mine: new Set(claims.mine) };
  };

  /** `final`: the instances whose key was read fenced or retired: their claims are void. */
  type Others = { liveSince: number[]; folded: SeqRange[]; final: Set<string> };
  /** Without an arbiter: the others' latest written checkpoints, live while written within the liveness. */
  const writtenOthers = async (self: string): Promise<Others> => {
    const others = await otherCheckpoints(clickhouse, db, self);
    const now = clock.now();
    return { liveSince: others.filter((c) => !c.retired && c.emittedAt >= now - options.livenessMs).map((c) => c.emittedAt), folded: others.flatMap((c) => c.folded), final: new Set() };
  };
  /**
   * The others' committed checkpoints. One taken for dead (nothing committed, or none of
   * its consumer-progress requests answered, for the liveness: `takenForDead`) is fenced
   * first: its key compare-and-set to fenced at its last committed checkpoint, then the
   * fence row written, and only then are its messages folded here (fence.ts).
   * If it committed meanwhile, it is alive: its old checkpoint holds the decision back
   * (liveSince −∞) until the next round reads the new one.
   */
  const committedOthers = async (arbiter: Arbiter, self: string): Promise<Others> => {
    const entries = await arbiter.others(self);
    const now = clock.now();
    const out: Others = { liveSince: [], folded: [], final: new Set() };
    for (const [other, entry] of entries) {
      let value = entry.value;
      if (takenForDead(value, now, options.livenessMs)) {
        const fenced = await arbiter.fence(other, entry, self);
        if (!fenced) {
          out.liveSince.push(-Infinity);
          continue;
        }
        if (fenced.by === self) {
          const unansweredMs = value.since === undefined ? undefined : value.at - Math.max(value.since, value.joined ?? 0);
          logger.warn({ fenced: other, checkpoint: fenced.n, silentMs: now - value.at, unansweredMs }, 'realtime: fenced an instance taken for dead (no checkpoint, or no answer to its consumer-progress requests, for the liveness); its rows above that checkpoint no longer count, its messages are folded here');
        }
        value = fenced;
      }
      if (value.state === 'fenced' && !fencesWritten.has(other)) {
        await insertFence(clickhouse, db, other, value.n, value.by ?? self, now);
        fencesWritten.add(other);
      }
      if (value.state === 'live') out.liveSince.push(value.since ?? value.at);
      else out.final.add(other);
      out.folded.push(...value.folded);
    }
    return out;
  };

  const arrive = (seq: number, redelivered: boolean, events: readonly TidemarkEvent[]) => {
    if (folds.empty) return;
    // Not registered (after a fence, until the new id is): the others do not wait for this
    // instance, so a first delivery read now is not folded: every batch holding it stays
    // unacked and it comes again, to be decided at a gate. A redelivery waits at the gate.
    if (!joined && !redelivered) {
      dropped.add(seq);
      return;
    }
    // A first delivery never waits behind a redelivered one: held past ackWait, it would go
    // to another instance, which decides from this one's checkpoints, and those would not
    // name it yet (measured: folded both there and here). Order at the gate is not needed:
    // a message's event times move the watermarks only once the ack floor covers it
    // (acked-prefix.ts), and the floor cannot pass a redelivered message still waiting.
    if (!redelivered) {
      decided.set(seq, writes);
      dropped.delete(seq);
      folds.fold(seq, events, clock.now());
      return;
    }
    gate.push({ seq, redelivered, events, at: clock.now() });
    resolving ??= resolve().finally(() => {
      resolving = undefined;
    });
  };

  // processing time as far as every delivered message is acked: the watermarks' idleness runs on it, not on the clock
  const settled = new SettledClock();
  const refreshFloor = async (now: number) => {
    if (!options.ackFloor || now - floorAt < ACK_FLOOR_EVERY_MS) return;
    floorAt = now;
    try {
      const progress = await options.ackFloor();
      // answered behind every message the consumer's server sent here before `now` (see `since` in fence.ts)
      answeredAt = now;
      floor = Math.max(floor, progress.floor);
      settled.asked(now, progress.delivered);
    } catch (err) {
      logger.debug({ err: (err as Error).message }, 'ack floor unavailable; folded sequences kept');
    }
    settled.settle(floor);
    folds.release(floor);
    // acked by someone: no batch of them can come here again
    for (const seq of dropped) if (seq <= floor) dropped.delete(seq);
  };

  let disorderAt = clock.now();
  /** The period's per-source disorder as one log line (scripts/measure-disorder.ts reads it), the worst sources first. */
  const logDisorder = (now: number) => {
    disorderAt = now;
    if (folds.disorder.empty) return metrics.disorder(0);
    const sources = Object.entries(folds.disorder.drain()).sort(([, a], [, b]) => b.max - a.max);
    const worst = sources[0]![1];
    metrics.disorder(worst.max);
    logger.info({ disorder: Object.fromEntries(sources.slice(0, 50)), sources: sources.length, worstMs: { p50: disorderQuantile(worst, 0.5), p99: disorderQuantile(worst, 0.99), max: worst.max } }, 'realtime source disorder');
  };

  /**
   * Another instance fenced this one (took it for dead: stopped longer than the
   * liveness). Its uncommitted folds must not count: they are dropped with the panes,
   * the batches waiting on them are not acked (they come again), and it goes on under a
   * new id, registered before it folds anything.
   */
  const rejoin = async (checkpoint: number) => {
    const old = instance;
    instance = `${options.instance}.${++incarnation}`;
    joined = false;
    logger.error({ instance: old, next: instance, checkpoint, committed: durableWrites }, 'realtime: this instance was fenced by another processor (it committed nothing for the liveness: stopped or paused); its uncommitted folds are dropped, its unacked messages come again after ackWait, it goes on as a new instance');
    for (const [seq, at] of decided) {
      if (at < durableWrites) continue;
      dropped.add(seq);
      decided.delete(seq);
    }
    // what waited at the gate was held past ackWait too: it may have gone to another instance, so it comes again instead
    for (const arrival of gate.splice(0)) dropped.add(arrival.seq);
    for (const waiter of waiters.splice(0)) waiter.reject(new RealtimeFenced(old));
    folds = newFolds();
    pending = new Map();
    uncommitted.clear();
    committedRows.clear();
    lastWatermarks = '';
    await register();
  };
  const register = async () => {
    joinedAt = clock.now();
    await arbiter?.register(instance, writes, joinedAt);
    joined = true;
  };

  /** Moves the rows sent since the last commit to the committed ones: the prev_* of later rows. */
  const committed = (n: number) => {
    durableWrites = n;
    for (const [key, row] of uncommitted) {
      committedRows.delete(key);
      // a window's final row is its last: nothing comes after it to carry it as prev_*
      if (row.final === 0 || key.startsWith('late/')) committedRows.set(key, figuresOf(row));
    }
    uncommitted.clear();
    for (const key of committedRows.keys()) {
      if (committedRows.size <= MAX_COMMITTED_REFUSALS + folds.openWindows) break;
      if (key.startsWith('late/')) committedRows.delete(key);
    }
  };

  let retiring = false;
  // one at a time: two checkpoints taken at once would compare-and-set from the same revision
  let flushing: Promise<void> = Promise.resolve();
  const flush = (): Promise<void> => {
    const run = flushing.then(flushOnce);
    flushing = run.catch(() => undefined);
    return run;
  };
  const flushOnce = async () => {
    if (!joined) await register();
    await refreshFloor(clock.now());
    if (retiring || clock.now() - disorderAt >= DISORDER_LOG_MS) logDisorder(clock.now());
    const now = clock.now();
    const { results, refusals } = folds.due(options.ackFloor ? settled.settledAt : now);
    for (const result of results) pending.set(`${result.report}/${result.size}/${result.start}/${result.group}`, realtimeRow(result, instance, now));
    for (const refusal of refusals) pending.set(`late/${refusal.report}/${refusal.size}/${refusal.start}/${refusal.group}`, refusalRow(refusal, instance, now));
    for (const [report, count] of folds.refusedSince) metrics.refused(report, count);
    folds.refusedSince.clear();
    for (const [report, count] of folds.cutSince) {
      if (stats.groupsCut === 0) logger.warn({ report, limit: options.maxGroups }, 'realtime group limit reached: events of further groups are stored and in the daily view, not in the realtime view');
      metrics.cut(report, count);
    }
    folds.cutSince.clear();
    Object.assign(stats, { lateRejected: folds.stats.lateRefused, folded: folds.stats.folded, skipped: folds.stats.skipped + skippedElsewhere, duplicates: folds.stats.duplicates, openWindows: folds.openWindows, groupsCut: folds.stats.groupsCut });
    const watermarks = folds.watermarks();
    const watermarksText = JSON.stringify(watermarks);
    // with nothing new, the checkpoint is still written about once a second: it tells the view this instance is alive
    if (pending.size === 0 && waiters.length === 0 && !retiring && watermarksText === lastWatermarks && now - lastWriteAt < HEARTBEAT_MS) return;
    // the checkpoint is taken with the rows, synchronously: it names exactly what they hold
    const n = ++writes;
    const folded = folds.foldedAbove(floor);
    const since = answeredAt;
    pending.set('checkpoint', checkpointRow(instance, n, folded, watermarks, now, retiring));
    const batch = pending;
    pending = new Map();
    const rows = [...batch].map(([key, row]) => numbered(row, n, committedRows.get(key)));
    for (const [key, row] of batch) uncommitted.set(key, row);
    try {
      // a refused row is filed by `insert` and not kept pending: sending it again would fail every refresh
      const filed = options.insert ? await options.insert(rows) : (await insertRealtime(clickhouse, db, rows), 0);
      if (filed > 0) logger.error({ rows: filed }, 'ClickHouse refused realtime window rows; filed in the DLQ (REFUSED_BY_SINK)');
    } catch (err) {
      for (const [key, row] of pending) batch.set(key, row);
      pending = batch;
      throw err;
    }
    // only a committed checkpoint makes its messages durable: one inserted but fenced does not count (fence.ts)
    if (arbiter && (await arbiter.commit(instance, { n, at: now, since, joined: joinedAt, folded, state: retiring ? 'retired' : 'live' })) === 'fenced') return rejoin(n);
    stats.emitted += batch.size - 1;
    committed(n);
    wakeWaiters();
    lastWriteAt = now;
    lastWatermarks = watermarksText;
  };

  // a failed refresh keeps its rows pending: they go with the next one
  const loop = folds.empty ? undefined : runLoop({ name: 'realtime refresh', step: flush, everyMs: options.refreshMs, waitFirst: true, logger });

  return {
    arrive,
    durable,
    start: register,
    get instance() {
      return instance;
    },
    flush,
    stats,
    stop: async () => {
      controller.abort();
      await loop?.stop();
      await resolving;
      retiring = true;
      if (!folds.empty) await flush().catch((err: unknown) => logger.warn({ err }, 'final realtime flush failed'));
      // what the final checkpoint does not name (held at the gate, or folded after it) is not acked: it comes again
      stopped = true;
      for (const waiter of waiters.splice(0)) waiter.reject(new RealtimeStopped(instance));
    },
  };
}
