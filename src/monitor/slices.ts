import { addDelay, percentile, type Histogram } from './histogram.ts';

/**
 * Delay statistics in slices of receivedAt: each instance sums what it saw per
 * (source, slice) and writes the partial slices to ClickHouse, where any window
 * adds them up, over every instance, before percentiles are read.
 */
export type Slice = { source: string; sliceStart: number; events: number; late: number; worstMs: number; hist: Histogram };

export type SliceAccumulator = {
  add: (source: string, receivedAt: number, delayMs: number, late: boolean) => void;
  /** everything added since the last drain */
  drain: () => Slice[];
};

export function createSliceAccumulator(sliceMs: number): SliceAccumulator {
  let slices = new Map<string, Slice>();
  return {
    add: (source, receivedAt, delayMs, late) => {
      const sliceStart = Math.floor(receivedAt / sliceMs) * sliceMs;
      const key = `${source}\u0000${sliceStart}`;
      let slice = slices.get(key);
      if (!slice) {
        slice = { source, sliceStart, events: 0, late: 0, worstMs: delayMs, hist: {} };
        slices.set(key, slice);
      }
      slice.events++;
      if (late) slice.late++;
      slice.worstMs = Math.max(slice.worstMs, delayMs);
      addDelay(slice.hist, delayMs);
    },
    drain: () => {
      const out = [...slices.values()];
      slices = new Map();
      return out;
    },
  };
}

export type WindowTotals = { source: string; events: number; late: number; worstMs: number; hist: Histogram };
export type WindowStats = { source: string; events: number; late: number; lateShare: number; p50: number; p95: number; p99: number; worstMs: number };

export function windowStats(totals: WindowTotals): WindowStats {
  const { source, events, late, worstMs, hist } = totals;
  // a bin's middle can overshoot the largest delay in it; the worst delay is exact
  const q = (p: number) => Math.min(percentile(hist, p) ?? 0, Math.max(worstMs, 0));
  return { source, events, late, lateShare: events ? late / events : 0, p50: q(0.5), p95: q(0.95), p99: q(0.99), worstMs };
}
