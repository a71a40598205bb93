/**
 * A report's watermark kept per source, as Flink and Beam keep one per input partition.
 *
 * One watermark for all sources (the highest occurredAt seen) lets whichever source is
 * furthest ahead close everyone's windows: a pack of one store's events that overtakes
 * another store's earlier ones inside the pipeline, or a till whose clock runs minutes
 * fast. Here each source has its own event-time mark, the highest capped occurredAt it
 * sent minus the allowed out-of-orderness, and the report's event time is the lowest
 * mark among the sources that are active.
 *
 * - A source's event times are capped at their receivedAt: a clock running ahead (within
 *   the gateway's maxFutureSkew) counts as the time the event arrived, not later.
 * - A source silent for `idleMs` of processing time stops holding the others back (and
 *   is forgotten, so memory follows the sources active in the last idleMs, at most
 *   `maxSources`; past the cap the longest silent one is dropped).
 * - When every source is silent, event time follows the clock from the highest mark, as
 *   the single watermark did (see Watermark): quiet windows still close.
 * - For `holdMs` (default idleMs) after its first event an instance closes nothing: the
 *   sources of a burst that started together all get to register before the first of
 *   them can close a window on the others.
 *
 * `closing` is what WindowStore.advance takes: event time minus the report's allowed
 * lateness. It never decreases.
 */
import { Watermark } from './windows.ts';

export type SourceWatermarkOptions = {
  outOfOrdernessMs: number;
  allowedLatenessMs: number;
  idleMs: number;
  maxSources: number;
  holdMs?: number;
};

type SourceMark = { max: number; progressAt: number; seenAt: number };

export class SourceWatermarks {
  readonly #sources = new Map<string, SourceMark>();
  readonly #everySource: Watermark;
  #firstAt = Infinity;
  #closing = -Infinity;

  constructor(readonly options: SourceWatermarkOptions) {
    this.#everySource = new Watermark(options.outOfOrdernessMs + options.allowedLatenessMs, options.idleMs);
  }

  /** The closing watermark last computed by tick. */
  get closing(): number {
    return this.#closing;
  }

  /** Sources currently tracked. */
  get sources(): number {
    return this.#sources.size;
  }

  /** Takes one event at processing time `nowMs`; returns how far behind its source's mark it is (0 when in order). */
  observe(source: string, occurredAtMs: number, receivedAtMs: number, nowMs: number): number {
    const t = Math.min(occurredAtMs, receivedAtMs);
    if (this.#firstAt === Infinity) this.#firstAt = nowMs;
    this.#everySource.observe(t, nowMs);
    let mark = this.#sources.get(source);
    if (!mark) {
      if (this.#sources.size >= this.options.maxSources) this.#evict(nowMs);
      mark = { max: t, progressAt: nowMs, seenAt: nowMs };
      this.#sources.set(source, mark);
      return 0;
    }
    mark.seenAt = nowMs;
    if (t > mark.max) {
      mark.max = t;
      mark.progressAt = nowMs;
      return 0;
    }
    return mark.max - t;
  }

  /** Drops the silent sources, or the longest silent one when none is. */
  #evict(nowMs: number): void {
    let oldest: string | undefined;
    let oldestAt = Infinity;
    for (const [source, mark] of this.#sources) {
      if (nowMs - mark.seenAt >= this.options.idleMs) this.#sources.delete(source);
      else if (mark.seenAt < oldestAt) [oldest, oldestAt] = [source, mark.seenAt];
    }
    if (this.#sources.size >= this.options.maxSources && oldest !== undefined) this.#sources.delete(oldest);
  }

  /** The closing watermark at processing time `nowMs`. */
  tick(nowMs: number): number {
    const { idleMs, outOfOrdernessMs, allowedLatenessMs } = this.options;
    if (nowMs - this.#firstAt < (this.options.holdMs ?? idleMs)) return this.#closing;
    let eventTime = Infinity;
    for (const [source, mark] of this.#sources) {
      if (nowMs - mark.seenAt >= idleMs) {
        this.#sources.delete(source);
        continue;
      }
      // a source that keeps sending only stragglers is not progressing: after idleMs its mark follows the clock, as Watermark does
      const stalled = Math.max(0, nowMs - mark.progressAt - idleMs);
      eventTime = Math.min(eventTime, mark.max - outOfOrdernessMs + stalled);
    }
    const closing = eventTime === Infinity ? this.#everySource.tick(nowMs) : eventTime - allowedLatenessMs;
    this.#closing = Math.max(this.#closing, closing);
    return this.#closing;
  }
}
