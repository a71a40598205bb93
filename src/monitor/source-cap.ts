/**
 * How many sources one SLA keeps state for. Sources are the sender's choice: one
 * event from each of a million made-up sources would otherwise leave a million KV
 * documents, each checked on every tick (and, for `every`, a MissingData alert each).
 * Above the limit a new source gets no SLA state; its events are still stored and
 * counted in the reports, and the cut is counted and logged.
 */
export type SourceCap = {
  /** whether `key` (`<kind>.<sla>.<source token>`) may hold state: it already does, or its SLA is under the limit */
  admits: (key: string) => boolean;
  /** keys refused in this batch, by `<kind>.<sla>` */
  cut: ReadonlyMap<string, number>;
};

const prefixOf = (key: string): string => key.slice(0, key.indexOf('.', key.indexOf('.') + 1));

/**
 * One per batch, counted on `entries` as they stand when the batch asks its first question
 * plus what the batch itself admits. Sound only on a view that shows every write this
 * instance made before (see `capOnSyncedView`).
 */
export function sourceCap(entries: ReadonlyMap<string, unknown>, max: number): SourceCap {
  const counts = new Map<string, number>();
  const admitted = new Set<string>();
  const cut = new Map<string, number>();
  const countOf = (prefix: string): number => {
    let count = counts.get(prefix);
    if (count === undefined) {
      count = 0;
      for (const key of entries.keys()) if (key.startsWith(`${prefix}.`)) count++;
      counts.set(prefix, count);
    }
    return count;
  };
  return {
    cut,
    admits: (key) => {
      if (entries.has(key) || admitted.has(key)) return true;
      const prefix = prefixOf(key);
      const count = countOf(prefix);
      if (count >= max) {
        cut.set(prefix, (cut.get(prefix) ?? 0) + 1);
        return false;
      }
      counts.set(prefix, count + 1);
      admitted.add(key);
      return true;
    },
  };
}

/**
 * The cap of one batch that will ask about `keys`, on `state` (the monitor state's watch
 * mirror and its sync). The mirror lags the bucket: a monitor just started sees none of
 * the existing sources yet, a source it wrote a moment ago is not there yet, and one the
 * tick forgot may still be, or may be gone while this instance's own write brought it
 * back. Counted on such a view (as this was, with a set of keys admitted but not yet
 * seen), a restarted monitor or a source forgotten as it resumed let an SLA hold more
 * than `max` sources, and a source forgotten before the watch showed it held its place
 * for good (test/unit/monitor-source-cap-race.test.ts). So when any of the keys is
 * unknown to the mirror, which is when the count decides something, the mirror is synced
 * first; batches of known sources cost nothing more. Batches of one instance run one at
 * a time, and each has written (or failed) before the next, so the synced view holds
 * this instance's earlier writes. Instances racing may together pass the limit by what
 * each admits at once.
 */
export async function capOnSyncedView(state: { entries: ReadonlyMap<string, unknown>; sync: () => Promise<void> }, keys: Iterable<string>, max: number): Promise<SourceCap> {
  const known = new Set<string>();
  for (const key of keys) {
    if (state.entries.has(key)) known.add(key);
    else {
      await state.sync();
      return sourceCap(state.entries, max);
    }
  }
  // decided now: the watch may yet drop one of them (forgotten) before the batch asks, on a view still without our latest writes
  const cap = sourceCap(state.entries, max);
  return { cut: cap.cut, admits: (key) => known.has(key) || cap.admits(key) };
}
