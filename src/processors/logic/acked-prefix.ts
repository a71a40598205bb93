/**
 * Watermark contributions held back until the EVENTS consumer's ack floor covers them.
 *
 * An instance's watermark must follow only input it has fully seen, as Flink derives a
 * watermark only from the partitions it has read up to a point. Every message at or below
 * the ack floor is acked, so never comes to anyone again; any message this instance can
 * still get (a new one, or the redelivery of one another instance held when it died) is
 * above it. So if a message's event times move a source's mark only once the floor has
 * passed that message, a later message of the source is behind the mark by no more than
 * the source's own disorder in stream order — never because a processor crashed while
 * holding an earlier message. The events themselves go into the panes at once: figures
 * stay fresh, only closing waits.
 *
 * Kept per message as, for each lane (report), the highest capped event time of each
 * source, and the processing time it was folded at. Past `maxEntries` adjacent entries
 * are merged in pairs, released once the floor covers the highest sequence of both:
 * later, never wrong, and memory stays bounded however long the floor is stuck.
 */

/** One lane's contribution: source → highest capped occurredAt. */
export type LaneMarks = Map<string, number>;

export type HeldMarks = {
  /** highest EVENTS sequence whose events are in here: released when the floor reaches it */
  toSeq: number;
  /** the latest processing time one of its messages was folded at */
  foldedAt: number;
  lanes: LaneMarks[];
};

export const DEFAULT_MAX_HELD = 256;

export class AckedPrefix {
  #held: HeldMarks[] = [];

  constructor(readonly maxEntries = DEFAULT_MAX_HELD) {}

  get size(): number {
    return this.#held.length;
  }

  get empty(): boolean {
    return this.#held.length === 0;
  }

  /** Holds one folded message's marks (nothing is held for a message without any). */
  hold(seq: number, foldedAt: number, lanes: LaneMarks[]): void {
    if (lanes.every((lane) => lane.size === 0)) return;
    this.#held.push({ toSeq: seq, foldedAt, lanes });
    if (this.#held.length > this.maxEntries) this.#coalesce();
  }

  /** Takes out what the ack floor now covers, oldest first. */
  release(floor: number): HeldMarks[] {
    if (this.#held.length === 0) return [];
    const out: HeldMarks[] = [];
    const kept: HeldMarks[] = [];
    for (const entry of this.#held) (entry.toSeq <= floor ? out : kept).push(entry);
    if (out.length > 0) this.#held = kept;
    return out;
  }

  #coalesce(): void {
    const merged: HeldMarks[] = [];
    for (let i = 0; i < this.#held.length; i += 2) {
      const a = this.#held[i]!;
      const b = this.#held[i + 1];
      merged.push(b ? mergeHeld(a, b) : a);
    }
    this.#held = merged;
  }
}

function mergeHeld(a: HeldMarks, b: HeldMarks): HeldMarks {
  const lanes = a.lanes.map((lane, i) => {
    const into = new Map(lane);
    for (const [source, t] of b.lanes[i] ?? []) into.set(source, Math.max(into.get(source) ?? -Infinity, t));
    return into;
  });
  return { toSeq: Math.max(a.toSeq, b.toSeq), foldedAt: Math.max(a.foldedAt, b.foldedAt), lanes };
}

/** Unsettled consumer answers kept (about a minute of a stuck floor at one a 2 s); past it the oldest two are merged. */
const MAX_ASKED = 32;

/**
 * Processing time as far as the input is settled: the latest time T such that every
 * message delivered (to any instance) before T is acked. It stops while a message is in
 * doubt (its holder died and it is not yet redelivered and acked), so the watermarks'
 * idleness, which runs on it, never closes a window on such a message.
 *
 * Fed with each answer of the consumer: when it was asked (before the answer came) and
 * the highest sequence it had delivered; once the ack floor covers that sequence, every
 * message delivered before that time is acked.
 */
export class SettledClock {
  readonly #asked: Array<{ at: number; delivered: number }> = [];
  #settledAt = -Infinity;

  get settledAt(): number {
    return this.#settledAt;
  }

  /** Takes one answer: asked at `atMs`, the consumer had delivered up to `delivered`. */
  asked(atMs: number, delivered: number): void {
    this.#asked.push({ at: atMs, delivered });
    // while the floor is stuck: earlier in time and higher in sequence (later to settle, never wrong)
    if (this.#asked.length > MAX_ASKED) this.#asked.splice(0, 2, { at: this.#asked[0]!.at, delivered: this.#asked[1]!.delivered });
  }

  /** Moves on with the ack floor; returns the settled time. */
  settle(floor: number): number {
    while (this.#asked.length > 0 && this.#asked[0]!.delivered <= floor) this.#settledAt = Math.max(this.#settledAt, this.#asked.shift()!.at);
    return this.#settledAt;
  }
}
