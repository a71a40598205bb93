/**
 * The batch reconciliation computed the plain way, as the yardstick for the checksum
 * bisection: every record of both systems in memory, grouped by key, every pair
 * compared. It states the rules of the contract again from scratch and imports nothing
 * from src/: decimals are the BigInt reference, business days come from Intl.
 */
import { oracleDay } from './oracle.ts';
import { compareRef, parseRef, type RefDecimal } from './reference-decimal.ts';

type Value = string | null;
export type RefRecord = { key: string[]; fields: Record<string, Value>; time: number };
type FieldRule = { compare: 'exact' } | { compare: 'absolute' | 'percentage'; tolerance: string | number };
export type RefSpec = { name: string; fields: Record<string, FieldRule>; lag: number; timeZone: string };
export type RefFinding = {
  type: 'MissingInA' | 'MissingInB' | 'Mismatch' | 'Duplicate';
  side: 'A' | 'B' | null;
  key: string[];
  count: number;
  diffs: { field: string; a: Value; b: Value }[];
  a: RefRecord | null;
  b: RefRecord | null;
};

const abs = (d: RefDecimal): RefDecimal => (d.units < 0n ? { units: -d.units, scale: d.scale } : d);
const minus = (x: RefDecimal, y: RefDecimal): RefDecimal => {
  const scale = Math.max(x.scale, y.scale);
  return { units: x.units * 10n ** BigInt(scale - x.scale) - y.units * 10n ** BigInt(scale - y.scale), scale };
};
const times = (x: RefDecimal, y: RefDecimal): RefDecimal => ({ units: x.units * y.units, scale: x.scale + y.scale });

/** SPEC: null agrees only with null; equal text agrees; otherwise both must be decimal text within the field's tolerance. */
function agree(rule: FieldRule, a: Value, b: Value): boolean {
  if (a === null || b === null) return a === b;
  if (a === b) return true;
  const x = parseRef(a);
  const y = parseRef(b);
  if (!x || !y) return false;
  const gap = abs(minus(x, y));
  if (rule.compare === 'exact') return gap.units === 0n;
  const tolerance = parseRef(String(rule.tolerance))!;
  if (rule.compare === 'absolute') return compareRef(gap, tolerance) <= 0;
  return compareRef(times(gap, { units: 100n, scale: 0 }), times(abs(x), tolerance)) <= 0;
}

const diffsOf = (spec: RefSpec, a: RefRecord, b: RefRecord) =>
  Object.entries(spec.fields)
    .map(([field, rule]) => ({ field, a: a.fields[field] ?? null, b: b.fields[field] ?? null, rule }))
    .filter((f) => !agree(f.rule, f.a, f.b))
    .map(({ field, a: va, b: vb }) => ({ field, a: va, b: vb }));

/** The earliest record; on a tie, the one whose fields' JSON text sorts first. */
function first(records: readonly RefRecord[]): RefRecord {
  return [...records].sort((x, y) => x.time - y.time || (JSON.stringify(x.fields) < JSON.stringify(y.fields) ? -1 : 1))[0]!;
}

/**
 * The findings of one business day. A run reads both systems over the day widened by
 * the lag on each side, and reports a key only when its earliest A record (or, without
 * A, its earliest B record) falls on that day.
 */
export function referenceDiff(spec: RefSpec, period: string, aRecords: readonly RefRecord[], bRecords: readonly RefRecord[]): RefFinding[] {
  // time in [dayStart - lag, dayEnd + lag) exactly when the day of (time + lag) is not before
  // the period and the day of (time - lag) is not after it: local dates never run backwards
  const inWindow = (r: RefRecord) => oracleDay(r.time + spec.lag, spec.timeZone) >= period && oracleDay(r.time - spec.lag, spec.timeZone) <= period;
  const byKey = new Map<string, { key: string[]; a: RefRecord[]; b: RefRecord[] }>();
  for (const [side, records] of [['a', aRecords], ['b', bRecords]] as const) {
    for (const record of records.filter(inWindow)) {
      const text = JSON.stringify(record.key);
      const group = byKey.get(text) ?? { key: record.key, a: [], b: [] };
      group[side].push(record);
      byKey.set(text, group);
    }
  }
  const out: RefFinding[] = [];
  const finding = (f: Partial<RefFinding> & Pick<RefFinding, 'type' | 'key'>): RefFinding => ({ side: null, count: 1, diffs: [], a: null, b: null, ...f });
  for (const { key, a, b } of byKey.values()) {
    if (oracleDay(first(a.length > 0 ? a : b).time, spec.timeZone) !== period) continue;
    if (a.length >= 2) out.push(finding({ type: 'Duplicate', side: 'A', key, count: a.length, a: first(a) }));
    if (b.length >= 2) out.push(finding({ type: 'Duplicate', side: 'B', key, count: b.length, b: first(b) }));
    if (b.length === 0) out.push(finding({ type: 'MissingInB', key, a: first(a) }));
    else if (a.length === 0) out.push(finding({ type: 'MissingInA', key, b: first(b) }));
    else if (!a.some((x) => b.some((y) => diffsOf(spec, x, y).length === 0))) {
      out.push(finding({ type: 'Mismatch', key, diffs: diffsOf(spec, first(a), first(b)), a: first(a), b: first(b) }));
    }
  }
  return out;
}
