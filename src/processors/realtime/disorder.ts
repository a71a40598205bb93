/**
 * How far out of order each source's events reach the realtime fold: for an event
 * behind the highest capped occurredAt of its source folded before it, that minus its own
 * capped occurredAt. It is what `processor.outOfOrderness` must cover for nothing to be
 * refused, so the processor reports it (log line and metric) and the default is chosen
 * from it (scripts/measure-disorder.ts, README). A redelivered message is left out: it is
 * behind because a processor died holding it, which the watermark's acked-prefix rule
 * covers (acked-prefix.ts), not outOfOrderness.
 *
 * Kept as counts in power-of-two millisecond buckets per source: percentiles come out
 * within a factor of two, summaries from several periods or processes add up, and
 * memory stays a few numbers a source.
 */

/** Bucket i holds disorders in (2^(i-1), 2^i] ms; bucket 0 is ≤ 1 ms; the last is open. */
export const DISORDER_BUCKETS = 18;

export type SourceDisorder = { events: number; behind: number; max: number; buckets: number[] };

/** Sources summarised per period at most; past it the others go under one entry. */
const MAX_SOURCES = 1_000;
/** Sources whose latest event time is kept; past it all are forgotten (their next events count as in order). */
const MAX_LATEST = 10_000;
export const OTHER_SOURCES = '_other';

export function disorderBucket(ms: number): number {
  return Math.min(DISORDER_BUCKETS - 1, Math.max(0, Math.ceil(Math.log2(ms))));
}

export class DisorderStats {
  #sources = new Map<string, SourceDisorder>();
  readonly #latest = new Map<string, number>();

  /** Takes one event of `source` with capped event time `t`. */
  observe(source: string, t: number): void {
    const latest = this.#latest.get(source);
    if (latest === undefined && this.#latest.size >= MAX_LATEST) this.#latest.clear();
    if (latest === undefined || t > latest) this.#latest.set(source, t);
    this.record(source, latest === undefined ? 0 : latest - t);
  }

  /** Takes one event of `source` that was `behindMs` behind its source's latest (0: in order). */
  record(source: string, behindMs: number): void {
    let entry = this.#sources.get(source);
    if (!entry) {
      const key = this.#sources.size < MAX_SOURCES ? source : OTHER_SOURCES;
      entry = this.#sources.get(key) ?? { events: 0, behind: 0, max: 0, buckets: new Array<number>(DISORDER_BUCKETS).fill(0) };
      this.#sources.set(key, entry);
    }
    entry.events++;
    if (behindMs <= 0) return;
    entry.behind++;
    entry.max = Math.max(entry.max, behindMs);
    entry.buckets[disorderBucket(behindMs)]!++;
  }

  get empty(): boolean {
    return this.#sources.size === 0;
  }

  /** What was recorded since the last call, per source; starts a new period. */
  drain(): Record<string, SourceDisorder> {
    const out = Object.fromEntries(this.#sources);
    this.#sources = new Map();
    return out;
  }
}

/** Adds period summaries (of one source, from any processes) together. */
export function mergeDisorder(a: SourceDisorder, b: SourceDisorder): SourceDisorder {
  return { events: a.events + b.events, behind: a.behind + b.behind, max: Math.max(a.max, b.max), buckets: a.buckets.map((n, i) => n + (b.buckets[i] ?? 0)) };
}

/** The upper bound (ms) of the bucket holding quantile `q` of the events behind (0 when none were). */
export function disorderQuantile(d: SourceDisorder, q: number): number {
  if (d.behind === 0) return 0;
  const rank = Math.ceil(q * d.behind);
  let seen = 0;
  for (let i = 0; i < d.buckets.length; i++) {
    seen += d.buckets[i]!;
    if (seen >= rank) return Math.min(2 ** i, d.max);
  }
  return d.max;
}
