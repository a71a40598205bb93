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
 * A window closes when W >= end. It takes events until then; an event for a closed
 * window is refused and reported, never added (no back-fill). `snapshotOpen` gives the
 * open windows that changed since their last emission, numbered 1, 2, ... with timing
 * 'early'; `advance` gives each window's last emission, timing 'on_time', and forgets
 * the window, so memory holds only open windows. Timing follows Beam's pane timing;
 * there is no 'late' pane because late events are refused.
 */
import type { ReportConfig } from '../../core/config.ts';
import type { TidemarkEvent } from '../../core/envelope.ts';
import { compileGroupKey } from './group.ts';
import { addEvent, emptyState, finalize, type MeasureState } from './measures.ts';

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

export type WindowTiming = 'early' | 'on_time';

export interface WindowRef {
  readonly size: number;
  readonly slide: number;
  readonly start: number;
  readonly end: number;
  readonly group: string;
}

export interface WindowResult extends WindowRef {
  readonly report: string;
  /** 1, 2, ... per window: the early emissions, then the on-time one. */
  readonly emission: number;
  readonly timing: WindowTiming;
  readonly events: number;
  readonly measures: Record<string, string>;
  /** The accumulators behind `measures`, so instances that each saw part of the stream can be merged exactly. */
  readonly state: MeasureState;
}

interface OpenWindow extends WindowRef {
  readonly state: MeasureState;
  emissions: number;
  changed: boolean;
}

export class WindowStore {
  /** Open windows by end, so closing visits only the ends the watermark has passed. */
  readonly #byEnd = new Map<number, Map<string, OpenWindow>>();
  #watermark = -Infinity;
  #open = 0;
  readonly #groupKey: (event: TidemarkEvent) => string;

  constructor(readonly report: ReportConfig) {
    this.#groupKey = compileGroupKey(report);
  }

  /** Where this store has closed up to: the highest watermark given to advance. */
  get watermark(): number {
    return this.#watermark;
  }

  get openWindows(): number {
    return this.#open;
  }

  /** Adds the event to each of its windows still open; the closed ones are returned as rejected and left untouched. */
  add(event: TidemarkEvent): { accepted: WindowRef[]; rejected: WindowRef[] } {
    const group = this.#groupKey(event);
    const accepted: WindowRef[] = [];
    const rejected: WindowRef[] = [];
    for (const { size, slide } of this.report.windows) {
      for (const start of windowsFor(event.occurredAt, size, slide)) {
        const end = start + size;
        if (end <= this.#watermark) {
          rejected.push({ size, slide, start, end, group });
          continue;
        }
        const window = this.#openWindow(size, slide, start, end, group);
        addEvent(window.state, this.report, event);
        window.changed = true;
        accepted.push({ size, slide, start, end, group });
      }
    }
    return { accepted, rejected };
  }

  #openWindow(size: number, slide: number, start: number, end: number, group: string): OpenWindow {
    let atEnd = this.#byEnd.get(end);
    if (!atEnd) {
      atEnd = new Map();
      this.#byEnd.set(end, atEnd);
    }
    // With the end known, size and slide name the window spec (two specs can share a window's bounds).
    const id = `${size}/${slide}/${group}`;
    let window = atEnd.get(id);
    if (!window) {
      window = { size, slide, start, end, group, state: emptyState(this.report), emissions: 0, changed: false };
      atEnd.set(id, window);
      this.#open += 1;
    }
    return window;
  }

  #emit(window: OpenWindow, timing: WindowTiming): WindowResult {
    window.emissions += 1;
    window.changed = false;
    const { size, slide, start, end, group, state } = window;
    return { report: this.report.name, size, slide, start, end, group, emission: window.emissions, timing, events: state.events, measures: finalize(state, this.report), state };
  }

  /** Closes every window the watermark has passed (end <= watermark): their final, on-time results; they are then forgotten. */
  advance(watermark: number): WindowResult[] {
    if (watermark <= this.#watermark) return [];
    this.#watermark = watermark;
    const closed: WindowResult[] = [];
    for (const [end, windows] of this.#byEnd) {
      if (end > watermark) continue;
      for (const window of windows.values()) closed.push(this.#emit(window, 'on_time'));
      this.#open -= windows.size;
      this.#byEnd.delete(end);
    }
    return closed;
  }

  /** Early results of the open windows that took events since their last emission. */
  snapshotOpen(): WindowResult[] {
    const results: WindowResult[] = [];
    for (const windows of this.#byEnd.values()) {
      for (const window of windows.values()) if (window.changed) results.push(this.#emit(window, 'early'));
    }
    return results;
  }
}
