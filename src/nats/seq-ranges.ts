/** Inclusive [from, to] ranges of stream sequences: what a consumer has handled, in a few numbers. */
export type SeqRange = [number, number];

/** Sorted, disjoint, inclusive ranges covering the given sequences. */
export function seqRanges(seqs: Iterable<number>): SeqRange[] {
  const sorted = [...seqs].sort((a, b) => a - b);
  const out: SeqRange[] = [];
  for (const seq of sorted) {
    const last = out.at(-1);
    if (last && seq <= last[1] + 1) last[1] = Math.max(last[1], seq);
    else out.push([seq, seq]);
  }
  return out;
}

export const inRanges = (ranges: readonly SeqRange[], seq: number): boolean => ranges.some(([from, to]) => seq >= from && seq <= to);

export function unionRanges(a: readonly SeqRange[], b: readonly SeqRange[]): SeqRange[] {
  const sorted = [...a, ...b].map(([f, t]): SeqRange => [f, t]).sort((x, y) => x[0] - y[0]);
  const out: SeqRange[] = [];
  for (const [from, to] of sorted) {
    const last = out.at(-1);
    if (last && from <= last[1] + 1) last[1] = Math.max(last[1], to);
    else out.push([from, to]);
  }
  return out;
}
