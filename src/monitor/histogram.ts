/**
 * A mergeable delay histogram over logarithmic bins, each 2% wider than the one
 * before: any percentile read from it is within 1% of the true value (plus rounding
 * to whole milliseconds), whatever the spread, in at most ~1,300 bins for delays up to
 * a year. Partial histograms from several batches or monitor instances add up exactly,
 * which a t-digest or a reservoir cannot promise.
 */
export type Histogram = Record<string, number>;

const GROWTH = 1.02;
const LOG_GROWTH = Math.log(GROWTH);

/** Delays under a millisecond (including negative ones within the allowed future skew) share bin 0. */
const binOf = (ms: number): number => (ms < 1 ? 0 : 1 + Math.floor(Math.log(ms) / LOG_GROWTH));

/** The geometric middle of a bin, so the error is at most half a bin either way. */
const binValue = (bin: number): number => (bin === 0 ? 0 : Math.round(GROWTH ** (bin - 1) * Math.sqrt(GROWTH)));

export function addDelay(hist: Histogram, ms: number, count = 1): void {
  const bin = binOf(ms);
  hist[bin] = (hist[bin] ?? 0) + count;
}

export function mergeHistograms(a: Histogram, b: Histogram): Histogram {
  const out: Histogram = { ...a };
  for (const [bin, count] of Object.entries(b)) out[bin] = (out[bin] ?? 0) + count;
  return out;
}

/** Nearest-rank percentile (q in 0..1); null for an empty histogram. */
export function percentile(hist: Histogram, q: number): number | null {
  const bins = Object.entries(hist).map(([bin, count]) => [Number(bin), count] as const).sort((x, y) => x[0] - y[0]);
  const total = bins.reduce((sum, [, n]) => sum + n, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [bin, count] of bins) {
    seen += count;
    if (seen >= rank) return binValue(bin);
  }
  return binValue(bins.at(-1)![0]);
}
