/**
 * Which processor instance folds each redelivered EVENTS message a gate decided no one
 * had folded, without I/O (the arbiter keeps the value in one KV key, fence.ts).
 *
 * Why a claim: a redelivery held past ackWait before its batch reaches the handler is
 * delivered again, to another instance, so two gates can hold the same message at once.
 * Neither instance's checkpoint names a message that waits at its gate, so both would
 * read "nobody folded it" and fold it. A gate folds such a message only once it holds the
 * claim for it; the claim is taken by a compare-and-set on the one key, so of two gates
 * deciding together exactly one gets it. The other waits until the holder's committed
 * checkpoint (or the ack floor) has the message, and then skips it; if the holder is
 * fenced or retired first without having it, the claim is void and can be taken over.
 */
import { unionRanges, type SeqRange } from '../../nats/seq-ranges.ts';

/** `acked`: every sequence at or below it was acked (its claims were dropped); `by`: each holder's claimed sequences. */
export type Claims = { acked: number; by: Record<string, SeqRange[]> };

/**
 * `mine`: the sequences this instance holds the claim for (taken now, or before); `acked`:
 * at or below it a message was acked, so folded and committed by whoever acked it (skip);
 * the rest are held by another standing instance (wait). `next`: the value to write, when
 * something was claimed now (else nothing is written).
 */
export type ClaimDecision = { mine: number[]; acked: number; next?: Claims };

/**
 * Decides `seqs` for `self`. `stands(holder)` is false once the holder's key was read
 * fenced or retired (final states): its committed checkpoint, which the caller already
 * looked in, is all it counts, so its claims are void. An instance not read yet stands
 * (it may have registered after the caller's read). `floor`: the caller's ack floor.
 */
export function decideClaims(current: Claims | undefined, self: string, seqs: readonly number[], stands: (holder: string) => boolean, floor: number): ClaimDecision {
  const acked = Math.max(current?.acked ?? 0, floor);
  const by: Record<string, SeqRange[]> = {};
  for (const [holder, ranges] of Object.entries(current?.by ?? {})) {
    if (holder !== self && !stands(holder)) continue;
    const above = ranges.filter(([, to]) => to > acked).map(([from, to]): SeqRange => [Math.max(from, acked + 1), to]);
    if (above.length > 0) by[holder] = above;
  }
  const holderOf = holders(by);
  const mine: number[] = [];
  const taken: number[] = [];
  for (const seq of seqs) {
    if (seq <= acked) continue;
    const holder = holderOf(seq);
    if (holder === undefined) taken.push(seq);
    if (holder === undefined || holder === self) mine.push(seq);
  }
  if (taken.length === 0) return { mine, acked };
  by[self] = unionRanges(by[self] ?? [], taken.map((seq): SeqRange => [seq, seq]));
  return { mine, acked, next: { acked, by } };
}

/** Who holds a sequence: the holders' ranges are disjoint (a sequence is claimed only while nobody holds it), so one sorted list answers by binary search. */
function holders(by: Record<string, SeqRange[]>): (seq: number) => string | undefined {
  const held = Object.entries(by)
    .flatMap(([holder, ranges]) => ranges.map(([from, to]) => ({ from, to, holder })))
    .sort((x, y) => x.from - y.from);
  return (seq) => {
    let lo = 0;
    let hi = held.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const range = held[mid]!;
      if (seq < range.from) hi = mid - 1;
      else if (seq > range.to) lo = mid + 1;
      else return range.holder;
    }
    return undefined;
  };
}
