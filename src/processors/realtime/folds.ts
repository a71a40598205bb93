/**
 * What one processor instance has folded into its realtime panes, without I/O: the
 * windows of each report, their per-source watermarks, the EVENTS sequences folded, the
 * (source, id) pairs seen recently, and the refusals per closed window.
 *
 * Exactly once rests on two guards. A message (an EVENTS sequence) is folded at most
 * once: `has` answers for what this instance folded, and the caller asks the other
 * instances' written checkpoints about a redelivered one (realtime.ts). An event
 * re-sent in another message (same source and id) is folded once while its id is among
 * the `recentIds` last ones.
 */
import type { ReportConfig } from '../../core/config.ts';
import type { TidemarkEvent } from '../../core/envelope.ts';
import { eventIdentity } from '../../core/identity.ts';
import { RecentIds } from '../../core/recent-ids.ts';
import { groupCap, type GroupCap } from './group-cap.ts';
import { unionRanges, type SeqRange } from '../../nats/seq-ranges.ts';
import { SourceWatermarks } from '../logic/source-watermarks.ts';
import { AckedPrefix, type LaneMarks } from '../logic/acked-prefix.ts';
import { DisorderStats } from './disorder.ts';
import { WindowStore, type WindowRef, type WindowResult } from '../logic/windows.ts';

export type FoldOptions = {
  idleMs: number;
  outOfOrdernessMs: number;
  maxSources: number;
  recentIds: number;
  holdMs?: number;
  /** groups per report at once (processor.maxRealtimeGroups); unset: no limit */
  maxGroups?: number;
  /** called for each event left out by the group cap; `group` computes its group key (for the first of a day, say) */
  onCut?: (report: string, event: TidemarkEvent, group: () => string) => void;
  /**
   * A message's event times move the watermarks only once `release` is given an ack floor
   * at or above its sequence (acked-prefix.ts); the processor sets it. Unset: at once.
   */
  untilAcked?: boolean;
};

/** Events one instance refused for one closed window, counted since it started. */
export type Refusal = WindowRef & { report: string; count: number };

export type FoldStats = { folded: number; skipped: number; duplicates: number; lateRefused: number; groupsCut: number };

/** Refusal counts kept per window at most; past it the oldest window's count is dropped (its row keeps the figure written). */
const MAX_REFUSAL_WINDOWS = 10_000;

export class Folds {
  readonly #lanes: Array<{ report: ReportConfig; store: WindowStore; watermarks: SourceWatermarks; cap: GroupCap }>;
  readonly #ids: RecentIds;
  readonly #onCut: FoldOptions['onCut'];
  readonly #held: AckedPrefix | undefined;
  #folded: SeqRange[] = [];
  readonly #refusals = new Map<string, Refusal>();
  readonly #refusalsChanged = new Set<string>();
  readonly stats: FoldStats = { folded: 0, skipped: 0, duplicates: 0, lateRefused: 0, groupsCut: 0 };
  /** per report, events left out since the last `due` because the report held `maxGroups` groups (for the metric) */
  readonly cutSince = new Map<string, number>();
  /** per report, events refused since the last `due` (for the metric) */
  readonly refusedSince = new Map<string, number>();
  /** how far behind the latest of its source each event arrived, redeliveries left out (disorder.ts) */
  readonly disorder = new DisorderStats();

  constructor(reports: ReportConfig[], options: FoldOptions) {
    this.#ids = new RecentIds(options.recentIds);
    this.#onCut = options.onCut;
    this.#held = options.untilAcked ? new AckedPrefix() : undefined;
    this.#lanes = reports
      .filter((report) => report.windows.length > 0)
      .map((report) => ({
        report,
        store: new WindowStore(report),
        watermarks: new SourceWatermarks({ outOfOrdernessMs: options.outOfOrdernessMs, allowedLatenessMs: report.allowedLateness, idleMs: options.idleMs, maxSources: options.maxSources, ...(options.holdMs === undefined ? {} : { holdMs: options.holdMs }) }),
        cap: groupCap(report, options.maxGroups ?? Number.POSITIVE_INFINITY),
      }));
  }

  get empty(): boolean {
    return this.#lanes.length === 0;
  }

  get openWindows(): number {
    return this.#lanes.reduce((n, lane) => n + lane.store.openWindows, 0);
  }

  /** Whether this instance already folded the EVENTS message of this sequence. */
  has(seq: number): boolean {
    const ranges = this.#folded;
    for (let i = ranges.length - 1; i >= 0; i--) {
      const [from, to] = ranges[i]!;
      if (seq > to) return false;
      if (seq >= from) return true;
    }
    return false;
  }

  /** Folds one EVENTS message's events at processing time `nowMs`, unless its sequence was folded before; says whether it did. */
  fold(seq: number, events: readonly TidemarkEvent[], nowMs: number, redelivered = false): boolean {
    if (this.has(seq)) {
      this.stats.skipped++;
      return false;
    }
    this.#markFolded(seq);
    this.stats.folded++;
    const marks: LaneMarks[] | undefined = this.#held ? this.#lanes.map(() => new Map()) : undefined;
    for (const event of events) {
      const identity = eventIdentity(event.source, event.id);
      if (this.#ids.has(identity)) {
        this.stats.duplicates++;
        continue;
      }
      this.#ids.add(identity);
      if (!redelivered) this.disorder.observe(event.source, Math.min(event.occurredAt, event.receivedAt));
      for (const [i, { report, store, watermarks, cap }] of this.#lanes.entries()) {
        if (!report.types.includes(event.type)) continue;
        if (marks) {
          const t = Math.min(event.occurredAt, event.receivedAt);
          const lane = marks[i]!;
          lane.set(event.source, Math.max(lane.get(event.source) ?? -Infinity, t));
        } else watermarks.observe(event.source, event.occurredAt, event.receivedAt, nowMs);
        if (!cap.admits(event)) {
          this.stats.groupsCut++;
          this.cutSince.set(report.name, (this.cutSince.get(report.name) ?? 0) + 1);
          this.#onCut?.(report.name, event, () => cap.groupOf(event));
          continue;
        }
        const { rejected } = store.add(event);
        if (rejected.length > 0) this.#refuse(report.name, rejected);
      }
    }
    if (marks) this.#held!.hold(seq, nowMs, marks);
    return true;
  }

  /** Messages folded here whose event times still wait for the ack floor (chunks of them, past a bound). */
  get held(): number {
    return this.#held?.size ?? 0;
  }

  /**
   * Lets the event times of the messages at or below the ack floor `floor` move the
   * watermarks, as of the processing time each was folded at.
   */
  release(floor: number): void {
    for (const { foldedAt, lanes } of this.#held?.release(floor) ?? []) {
      for (const [i, marks] of lanes.entries()) {
        const { watermarks } = this.#lanes[i]!;
        for (const [source, t] of marks) watermarks.observe(source, t, t, foldedAt);
      }
    }
  }

  #markFolded(seq: number): void {
    const last = this.#folded.at(-1);
    if (last && seq === last[1] + 1) last[1] = seq;
    else if (!last || seq > last[1] + 1) this.#folded.push([seq, seq]);
    else this.#folded = unionRanges(this.#folded, [[seq, seq]]);
  }

  #refuse(report: string, windows: readonly WindowRef[]): void {
    this.stats.lateRefused++;
    this.refusedSince.set(report, (this.refusedSince.get(report) ?? 0) + 1);
    for (const ref of windows) {
      const key = `${report}/${ref.size}/${ref.start}/${ref.group}`;
      const refusal = this.#refusals.get(key);
      if (refusal) refusal.count++;
      else {
        if (this.#refusals.size >= MAX_REFUSAL_WINDOWS) {
          const oldest = this.#refusals.keys().next().value!;
          this.#refusals.delete(oldest);
          this.#refusalsChanged.delete(oldest);
        }
        this.#refusals.set(key, { ...ref, report, count: 1 });
      }
      this.#refusalsChanged.add(key);
    }
  }

  /**
   * What is due at processing time `nowMs`: the open windows that changed, the windows
   * the watermarks now close, and the refusal counts that changed since the last call.
   *
   * Idleness and a stalled source's mark follow processing time, which must not close
   * windows on messages still in doubt (held by an instance that died, not yet
   * redelivered). With `untilAcked` the caller passes the time up to which every message
   * delivered to any instance is acked (realtime.ts), so that clock stops while one is in
   * doubt, as the marks do.
   */
  due(nowMs: number): { results: WindowResult[]; refusals: Refusal[] } {
    const results: WindowResult[] = [];
    for (const { store, watermarks, cap } of this.#lanes) {
      const closed = store.advance(watermarks.tick(nowMs));
      cap.release(store.watermark);
      results.push(...store.snapshotOpen(), ...closed);
    }
    const refusals = [...this.#refusalsChanged].map((key) => ({ ...this.#refusals.get(key)! }));
    this.#refusalsChanged.clear();
    return { results, refusals };
  }

  /** Each report's closing watermark (−Infinity: nothing closed yet). */
  watermarks(): Record<string, number> {
    return Object.fromEntries(this.#lanes.map(({ report, watermarks }) => [report.name, watermarks.closing]));
  }

  /** The sequences folded above `floor`, as ranges; the ones at or below it (acked, never redelivered) are forgotten. */
  foldedAbove(floor: number): SeqRange[] {
    this.#folded = this.#folded.filter(([, to]) => to > floor).map(([from, to]) => [Math.max(from, floor + 1), to]);
    return this.#folded.map(([from, to]) => [from, to]);
  }
}
