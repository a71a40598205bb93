import { batchWindow } from './window.ts';
import { businessDay } from '../../core/business-day.ts';
import { discrepancy } from './discrepancy.ts';
import { fieldDiffs } from './values.ts';
import type { Discrepancy, ReconRecord, ReconSpec } from './types.ts';

/**
 * The batch result computed the plain way — every record of both systems in memory,
 * grouped by key, every pair compared — as the yardstick for the checksum bisection.
 * It states the rules once more, separately from diffKey, on purpose.
 */
export function referenceDiff(spec: ReconSpec, period: string, aRecords: readonly ReconRecord[], bRecords: readonly ReconRecord[]): Discrepancy[] {
  const { from, to } = batchWindow(period, spec.timeZone, spec.lag);
  const byKey = new Map<string, { key: string[]; a: ReconRecord[]; b: ReconRecord[] }>();
  const add = (record: ReconRecord, side: 'a' | 'b') => {
    if (record.time < from || record.time >= to) return;
    const text = JSON.stringify(record.key);
    const group = byKey.get(text) ?? { key: record.key, a: [], b: [] };
    group[side].push(record);
    byKey.set(text, group);
  };
  aRecords.forEach((r) => add(r, 'a'));
  bRecords.forEach((r) => add(r, 'b'));

  const out: Discrepancy[] = [];
  for (const { key, a, b } of byKey.values()) {
    const anchor = a.length > 0 ? a : b;
    let earliest = anchor[0]!;
    for (const r of anchor) if (r.time < earliest.time) earliest = r;
    if (businessDay(earliest.time, spec.timeZone) !== period) continue;
    const first = (records: ReconRecord[]): ReconRecord => {
      let best = records[0]!;
      for (const r of records) {
        const [rt, bt] = [JSON.stringify(r.fields), JSON.stringify(best.fields)];
        if (r.time < best.time || (r.time === best.time && rt < bt)) best = r;
      }
      return best;
    };
    if (a.length >= 2) out.push(discrepancy(spec.name, period, { type: 'Duplicate', side: 'A', key, count: a.length, a: first(a) }));
    if (b.length >= 2) out.push(discrepancy(spec.name, period, { type: 'Duplicate', side: 'B', key, count: b.length, b: first(b) }));
    if (b.length === 0) out.push(discrepancy(spec.name, period, { type: 'MissingInB', key, a: first(a) }));
    else if (a.length === 0) out.push(discrepancy(spec.name, period, { type: 'MissingInA', key, b: first(b) }));
    else {
      let agreeing = false;
      for (const x of a) for (const y of b) if (fieldDiffs(spec, x, y).length === 0) agreeing = true;
      if (!agreeing) out.push(discrepancy(spec.name, period, { type: 'Mismatch', key, diffs: fieldDiffs(spec, first(a), first(b)), a: first(a), b: first(b) }));
    }
  }
  return out;
}
