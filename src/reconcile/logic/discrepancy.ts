import { discrepancyId } from './keys.ts';
import { fieldDiffs } from './values.ts';
import type { Discrepancy, DiscrepancyType, FieldDiff, ReconRecord, ReconSpec, Side } from './types.ts';

export type Finding = {
  type: DiscrepancyType;
  side?: Side | null;
  key: string[];
  count?: number;
  diffs?: FieldDiff[];
  a?: ReconRecord | null;
  b?: ReconRecord | null;
};

export const discrepancy = (name: string, period: string, f: Finding): Discrepancy => ({
  id: discrepancyId(name, period, f.type, f.side ?? null, f.key),
  name,
  period,
  type: f.type,
  side: f.side ?? null,
  key: f.key,
  count: f.count ?? 1,
  diffs: f.diffs ?? [],
  a: f.a ?? null,
  b: f.b ?? null,
});

const recordOrder = (x: ReconRecord, y: ReconRecord): number => x.time - y.time || (JSON.stringify(x.fields) < JSON.stringify(y.fields) ? -1 : JSON.stringify(x.fields) > JSON.stringify(y.fields) ? 1 : 0);

/** Records in a canonical order (time, then content), so "the first" copy never depends on how rows were read. */
const canonicalOrder = (records: readonly ReconRecord[]): ReconRecord[] => [...records].sort(recordOrder);

/**
 * Every finding for one key in batch mode:
 * - more than one record on a side: Duplicate of that side (count = copies);
 * - records on one side only: MissingInA / MissingInB;
 * - records on both: Mismatch when no record of A agrees with any record of B on every
 *   compared field, shown on the first record of each side.
 */
export function diffKey(spec: Pick<ReconSpec, 'name' | 'fields'>, period: string, key: string[], as: readonly ReconRecord[], bs: readonly ReconRecord[]): Discrepancy[] {
  const a = canonicalOrder(as);
  const b = canonicalOrder(bs);
  const out: Discrepancy[] = [];
  if (a.length > 1) out.push(discrepancy(spec.name, period, { type: 'Duplicate', side: 'A', key, count: a.length, a: a[0] }));
  if (b.length > 1) out.push(discrepancy(spec.name, period, { type: 'Duplicate', side: 'B', key, count: b.length, b: b[0] }));
  if (a.length > 0 && b.length === 0) out.push(discrepancy(spec.name, period, { type: 'MissingInB', key, a: a[0] }));
  if (a.length === 0 && b.length > 0) out.push(discrepancy(spec.name, period, { type: 'MissingInA', key, b: b[0] }));
  if (a.length > 0 && b.length > 0 && !a.some((x) => b.some((y) => fieldDiffs(spec, x, y).length === 0))) {
    out.push(discrepancy(spec.name, period, { type: 'Mismatch', key, diffs: fieldDiffs(spec, a[0]!, b[0]!), a: a[0], b: b[0] }));
  }
  return out;
}
