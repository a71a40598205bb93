/**
 * The realtime view: sliding event-time windows, a watermark, and the open windows.
 *
 * Windows are [start, end) with start a multiple of `slide` counted from the epoch
 * (Flink's SlidingEventTimeWindows, offset 0); an instant lies in size/slide of them.
 *
 * Watermark W means "every event with occurredAt < W has been seen". From events,
 * W = (max occurredAt seen) - allowedLateness. When event time stops progressing (no
 * event raised the max for `idleMs` of processing time), W moves on with the clock:
 * W = max occurredAt - allowedLateness + (now - lastProgress - idleMs). Extrapolating
 * from the last event time rather than jumping to `now` keeps a source that always
 * runs, say, 10 minutes behind from having its quiet spells declared late; a
 * straggler (an event older than the max) does not count as progress, so it does not
 * hold the watermark back. W never decreases.
 *
 * Timing follows Beam's panes. Before event time (W + allowedLateness) reaches a
 * window's end, its emissions are 'early'; when it does, the window gets one 'on_time'
 * emission; events still within the allowed lateness then give 'late' emissions. A
 * window closes when W >= end: its final emission says so, and it is forgotten, so
 * memory holds only open windows. An event for a closed window is refused and
 * reported, never added (no back-fill). `snapshotOpen` gives the open windows that
 * changed since their last emission, numbered 1, 2, ...; `advance` gives the on-time
 * and final ones. With no allowed lateness the on-time emission is the final one.
 */
import type { ReportConfig } from '../../core/config.ts';
import type { TidemarkEvent } from '../../core/envelope.ts';
import { compileGroupKey } from './group.ts';
import { addEvent, emptyState, finalize, mergeStates, type MeasureState } from './measures.ts';

/** Starts of the windows of `size` sliding every `slide` that contain the instant, latest first. */
export function windowsFor(occurredAtMs: number, size: number, slide: number): number[] {
  const remainder = ((occurredAtMs % slide) + slide) % slide;
  const starts: number[] = [];
  for (let start = occurredAtMs - remainder; start > occurredAtMs - size; start -= slide) starts.push(start);
  return starts;
}

export class Watermark {
  #maxEventTime = -Infinity;
  #progressAt = -Infinity;
  #value = -Infinity;

  constructor(readonly allowedLatenessMs: number, readonly idleMs: number) {}

  get current(): number {
    return this.#value;
  }

  /** Takes an event's time at processing time `nowMs`; returns the watermark. */
  observe(occurredAtMs: number, nowMs: number): number {
    if (occurredAtMs > this.#maxEventTime) {
      this.#maxEventTime = occurredAtMs;
      this.#progressAt = nowMs;
    }
    this.#value = Math.max(this.#value, this.#maxEventTime - this.allowedLatenessMs);
    return this.tick(nowMs);
  }

  /** Moves the watermark on by the clock once event time has been idle for idleMs; returns it. */
  tick(nowMs: number): number {
    const idleFor = nowMs - this.#progressAt - this.idleMs;
    if (idleFor > 0 && Number.isFinite(idleFor)) {
      this.#value = Math.max(this.#value, this.#maxEventTime - this.allowedLatenessMs + idleFor);
    }
    return this.#value;
  }
}

export type WindowTiming = 'early' | 'on_time' | 'late';

export interface WindowRef {
  readonly size: number;
  readonly slide: number;
  readonly start: number;
  readonly end: number;
  readonly group: string;
}

export interface WindowResult extends WindowRef {
  readonly report: string;
  /** 1, 2, ... per window: the early emissions, the on-time one, then late ones. */
  readonly emission: number;
  readonly timing: WindowTiming;
  /** The window's last emission: it is closed and forgotten. */
  readonly final: boolean;
  readonly events: number;
  readonly measures: Record<string, string>;
  /** The accumulators behind `measures`, so instances that each saw part of the stream can be merged exactly. */
  readonly state: MeasureState;
}

/** One slide-long slice of event time for one group: every event lands in exactly one pane. */
interface Pane {
  readonly state: MeasureState;
  /** bumped on every add, so a window can tell whether any of its panes changed since it was emitted */
  version: number;
}

interface Spec {
  readonly size: number;
  readonly slide: number;
  /** group → pane start → pane */
  readonly panes: Map<string, Map<number, Pane>>;
  /** window key → emissions so far, the pane versions they covered, and whether the on-time one is out */
  readonly emitted: Map<string, { emissions: number; versions: number; onTime: boolean }>;
}

const NONE: WindowRef[] = [];

const floorTo = (t: number, step: number): number => t - (((t % step) + step) % step);

/**
 * Sliding windows kept as panes (Flink's and Beam's "panes" trick): an event is folded
 * into the one pane of its slide, not into each of the size/slide windows that contain
 * it, and a window's figure is its panes merged when it is emitted. Adding stays one
 * accumulator update however much the windows overlap.
 */
export class WindowStore {
  readonly #specs: Spec[];
  #watermark = -Infinity;
  readonly #groupKey: (event: TidemarkEvent) => string;

  constructor(readonly report: ReportConfig) {
    this.#groupKey = compileGroupKey(report);
    this.#specs = report.windows.map(({ size, slide }) => ({ size, slide, panes: new Map(), emitted: new Map() }));
  }

  /** Where this store has closed up to: the highest watermark given to advance. */
  get watermark(): number {
    return this.#watermark;
  }

  /** Windows holding at least one event and not yet closed. */
  get openWindows(): number {
    let open = 0;
    for (const spec of this.#specs) for (const [group] of spec.panes) open += this.#windowStarts(spec, group).length;
    return open;
  }

  /**
   * Adds the event to each of its windows still open and says how many took it; the
   * closed ones are listed as rejected and left untouched. Only rejections are built
   * as objects: they are rare, and this runs once per event.
   */
  add(event: TidemarkEvent): { accepted: number; rejected: WindowRef[] } {
    const group = this.#groupKey(event);
    let accepted = 0;
    let rejected: WindowRef[] | undefined;
    for (const spec of this.#specs) {
      const { size, slide } = spec;
      const paneStart = floorTo(event.occurredAt, slide);
      for (let start = paneStart; start > event.occurredAt - size; start -= slide) {
        if (start + size > this.#watermark) accepted++;
        else (rejected ??= []).push({ size, slide, start, end: start + size, group });
      }
      // the latest window holding the pane is the last to close: if it is closed, all are
      if (paneStart + size <= this.#watermark) continue;
      let panes = spec.panes.get(group);
      if (!panes) {
        panes = new Map();
        spec.panes.set(group, panes);
      }
      let pane = panes.get(paneStart);
      if (!pane) {
        pane = { state: emptyState(this.report), version: 0 };
        panes.set(paneStart, pane);
      }
      addEvent(pane.state, this.report, event);
      pane.version += 1;
    }
    return { accepted, rejected: rejected ?? NONE };
  }

  /** Starts of the windows that hold an event of this group and are still open. */
  #windowStarts(spec: Spec, group: string): number[] {
    const starts = new Set<number>();
    for (const paneStart of spec.panes.get(group)?.keys() ?? []) {
      for (let start = paneStart; start > paneStart - spec.size; start -= spec.slide) {
        if (start + spec.size > this.#watermark) starts.add(start);
      }
    }
    return [...starts].sort((a, b) => a - b);
  }

  /**
   * The window's figure, if there is something to say: early and late emissions only
   * when a pane changed since the last one; the on-time one and the final one always,
   * since readers need to see the window reach each of those points.
   */
  #emit(spec: Spec, group: string, start: number, moment: 'open' | 'on_time' | 'final'): WindowResult | undefined {
    const panes = spec.panes.get(group);
    let state = emptyState(this.report);
    let versions = 0;
    for (let paneStart = start; paneStart < start + spec.size; paneStart += spec.slide) {
      const pane = panes?.get(paneStart);
      if (!pane) continue;
      state = mergeStates(state, pane.state);
      versions += pane.version;
    }
    const key = `${group}\u0000${start}`;
    const previous = spec.emitted.get(key);
    const onTimeDone = previous?.onTime === true;
    const changed = previous?.versions !== versions;
    if (state.events === 0) return undefined;
    if (moment === 'open' && !changed) return undefined;
    if (moment === 'on_time' && onTimeDone) return undefined;
    const timing: WindowTiming = moment === 'open' ? (onTimeDone ? 'late' : 'early') : onTimeDone ? 'late' : 'on_time';
    const emissions = (previous?.emissions ?? 0) + 1;
    spec.emitted.set(key, { emissions, versions, onTime: onTimeDone || timing === 'on_time' });
    const { size, slide } = spec;
    return { report: this.report.name, size, slide, start, end: start + size, group, emission: emissions, timing, final: moment === 'final', events: state.events, measures: finalize(state, this.report), state };
  }

  /**
   * Moves the closing watermark (max event time − allowedLateness). A window whose end
   * event time has passed (watermark + allowedLateness) gets its on-time emission; one
   * the watermark itself has passed gets its final emission and is forgotten. With no
   * allowed lateness both happen at once: one on-time, final emission.
   */
  advance(watermark: number): WindowResult[] {
    if (watermark <= this.#watermark) return [];
    const eventTime = watermark + this.report.allowedLateness;
    const results: WindowResult[] = [];
    for (const spec of this.#specs) {
      for (const [group, panes] of spec.panes) {
        for (const start of this.#windowStarts(spec, group)) {
          const end = start + spec.size;
          if (end > eventTime) continue;
          const result = this.#emit(spec, group, start, end <= watermark ? 'final' : 'on_time');
          if (result) results.push(result);
          if (end <= watermark) spec.emitted.delete(`${group}\u0000${start}`);
        }
        for (const paneStart of panes.keys()) if (paneStart + spec.size <= watermark) panes.delete(paneStart);
        if (panes.size === 0) spec.panes.delete(group);
      }
    }
    this.#watermark = watermark;
    return results;
  }

  /** Results of the open windows that took events since their last emission: early, or late after the on-time one. */
  snapshotOpen(): WindowResult[] {
    const results: WindowResult[] = [];
    for (const spec of this.#specs) {
      for (const [group] of spec.panes) {
        for (const start of this.#windowStarts(spec, group)) {
          const result = this.#emit(spec, group, start, 'open');
          if (result) results.push(result);
        }
      }
    }
    return results;
  }
}
