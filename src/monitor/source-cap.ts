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
 * One per batch: counts are taken once per prefix from the state the batch starts
 * from, plus `admitted`, the keys this instance let in before (kept by the caller across
 * batches: the shared state learns of our own writes through a watch, a little later).
 * Instances racing may together pass the limit by what each admits at once.
 */
export function sourceCap(entries: ReadonlyMap<string, unknown>, admitted: Set<string>, max: number): SourceCap {
  // once the shared state shows a key, it counts there; left here it would outlive the key's expiry and hold its place for ever
  for (const key of admitted) if (entries.has(key)) admitted.delete(key);
  const counts = new Map<string, number>();
  const cut = new Map<string, number>();
  const countOf = (prefix: string): number => {
    let count = counts.get(prefix);
    if (count === undefined) {
      count = 0;
      for (const key of entries.keys()) if (key.startsWith(`${prefix}.`)) count++;
      for (const key of admitted) if (key.startsWith(`${prefix}.`) && !entries.has(key)) count++;
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
