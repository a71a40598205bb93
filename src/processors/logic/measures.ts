/**
 * Measure accumulators for one (report, business day, group) — or one realtime window.
 *
 * Canonical decimal text (every figure `finalize` returns): plain fixed notation, no
 * exponent, no trailing fractional zeros, no trailing ".", no "+" and no "-0"
 * ("1000000", "129.9", "-0.05", "0"). One value has exactly one text, so comparing
 * two figures as strings compares their values (the revision logic relies on it), and
 * no scale is imposed on a sum: it stays exact whatever scale the inputs carry. Any
 * ClickHouse Decimal(P, S) with S at least the inputs' scale parses it unchanged.
 *
 * Per measure:
 * - `count` without a field counts every event; with a field it counts the events whose
 *   field is present and not null (SQL `count(x)`).
 * - `sum`, `min`, `max`, `avg` take the field as an exact decimal: a JSON string of
 *   decimal text ("129.90") or a JSON number with at most 15 significant digits (see
 *   toDecimal). A missing, null or non-decimal value is skipped for that measure only
 *   (the event still counts in `events` and in `count`) and counted in the measure's
 *   `skipped`, so a bad feed is visible instead of silently shrinking a total.
 * - `sum` of no values is "0" (as ClickHouse `sum`); `min`, `max` and `avg` of no values
 *   have no figure: their key is absent from `finalize`'s result.
 * - `avg` is the exact sum divided by the number of values, rounded half-even to
 *   AVG_SCALE decimal places (then written in the canonical text).
 * - `uniq` is the exact number of distinct values, compared by canonical JSON (so "7"
 *   and 7 are two values, {"a":1,"b":2} and {"b":2,"a":1} one); null and missing skip.
 *
 * Sums carry 60 significant digits (src/core/decimal.ts), far beyond Decimal(38, S).
 * A state does not de-duplicate event ids: the caller adds each event once.
 */
import { z } from 'zod';
import type { MeasureConfig, ReportConfig } from '../../core/config.ts';
import { AVG_SCALE, Decimal, divideHalfEven, formatDecimal, toDecimal } from '../../core/decimal.ts';
import { canonicalJson, dataField } from '../../core/canonical.ts';
import type { TidemarkEvent } from '../../core/envelope.ts';

/** `n` counts the values a measure took, `skipped` the events whose value it could not take. */
interface CountAccumulator { readonly fn: 'count'; n: number; skipped: number }
interface SumAccumulator { readonly fn: 'sum' | 'avg'; n: number; skipped: number; sum: Decimal }
interface ExtremumAccumulator { readonly fn: 'min' | 'max'; n: number; skipped: number; value: Decimal | null }
interface UniqAccumulator { readonly fn: 'uniq'; n: number; skipped: number; values: Set<string> }
export type MeasureAccumulator = CountAccumulator | SumAccumulator | ExtremumAccumulator | UniqAccumulator;

export interface MeasureState {
  /** Events folded in. */
  events: number;
  /** Latest `receivedAt` folded in (the revision's `known_at`); null while empty. */
  knownAt: number | null;
  measures: Record<string, MeasureAccumulator>;
}

type MeasureList = ReadonlyArray<readonly [string, MeasureConfig]>;
const measureLists = new WeakMap<ReportConfig, MeasureList>();

/** Object.entries once per report: addEvent runs once per event and must not allocate it each time. */
function measureList(report: ReportConfig): MeasureList {
  let list = measureLists.get(report);
  if (!list) {
    list = Object.entries(report.measures);
    measureLists.set(report, list);
  }
  return list;
}

function emptyAccumulator(fn: MeasureConfig['fn']): MeasureAccumulator {
  switch (fn) {
    case 'count': return { fn, n: 0, skipped: 0 };
    case 'sum': case 'avg': return { fn, n: 0, skipped: 0, sum: new Decimal(0) };
    case 'min': case 'max': return { fn, n: 0, skipped: 0, value: null };
    case 'uniq': return { fn, n: 0, skipped: 0, values: new Set() };
  }
}

export function emptyState(report: ReportConfig): MeasureState {
  const measures: Record<string, MeasureAccumulator> = {};
  for (const [name, measure] of measureList(report)) measures[name] = emptyAccumulator(measure.fn);
  return { events: 0, knownAt: null, measures };
}

function addValue(acc: MeasureAccumulator, field: string | undefined, data: TidemarkEvent['data']): void {
  const raw = field === undefined ? undefined : dataField(data, field);
  if (acc.fn === 'count') {
    if (field === undefined || raw != null) acc.n += 1;
    else acc.skipped += 1;
    return;
  }
  if (acc.fn === 'uniq') {
    if (raw == null) {
      acc.skipped += 1;
      return;
    }
    acc.values.add(canonicalJson(raw));
    acc.n += 1;
    return;
  }
  const value = toDecimal(raw);
  if (value === undefined) {
    acc.skipped += 1;
    return;
  }
  acc.n += 1;
  switch (acc.fn) {
    case 'sum': case 'avg': acc.sum = acc.sum.plus(value); break;
    case 'min': if (acc.value === null || value.lt(acc.value)) acc.value = value; break;
    case 'max': if (acc.value === null || value.gt(acc.value)) acc.value = value; break;
  }
}

/**
 * Folds one event into `state` in place and returns it: a fresh object per event
 * would dominate the cost at tens of thousands of events a second. The caller has
 * already checked that the event belongs to the report (matchesReport).
 */
export function addEvent(state: MeasureState, report: ReportConfig, event: TidemarkEvent): MeasureState {
  state.events += 1;
  if (state.knownAt === null || event.receivedAt > state.knownAt) state.knownAt = event.receivedAt;
  for (const [name, measure] of measureList(report)) addValue(state.measures[name]!, measure.field, event.data);
  return state;
}

function mergeAccumulators(name: string, a: MeasureAccumulator, b: MeasureAccumulator | undefined): MeasureAccumulator {
  if (b === undefined || b.fn !== a.fn) throw new Error(`cannot merge measure "${name}": the two states come from different report definitions`);
  const n = a.n + b.n;
  const skipped = a.skipped + b.skipped;
  switch (a.fn) {
    case 'count': return { fn: a.fn, n, skipped };
    case 'sum': case 'avg': return { fn: a.fn, n, skipped, sum: a.sum.plus((b as SumAccumulator).sum) };
    case 'min': case 'max': {
      const other = (b as ExtremumAccumulator).value;
      const otherWins = other !== null && (a.value === null || (a.fn === 'min' ? other.lt(a.value) : other.gt(a.value)));
      const pick = otherWins ? other : a.value;
      return { fn: a.fn, n, skipped, value: pick };
    }
    case 'uniq': return { fn: a.fn, n, skipped, values: new Set([...a.values, ...(b as UniqAccumulator).values]) };
  }
}

/** A new state holding both inputs (neither is modified); associative and commutative, so partial states from any processes and any partition combine to the same figures. */
export function mergeStates(a: MeasureState, b: MeasureState): MeasureState {
  const names = Object.keys(a.measures);
  if (names.length !== Object.keys(b.measures).length) throw new Error('cannot merge states of different report definitions');
  const measures: Record<string, MeasureAccumulator> = {};
  for (const name of names) measures[name] = mergeAccumulators(name, a.measures[name]!, b.measures[name]);
  const knownAt = a.knownAt === null ? b.knownAt : b.knownAt === null ? a.knownAt : Math.max(a.knownAt, b.knownAt);
  return { events: a.events + b.events, knownAt, measures };
}

/** Figures in canonical decimal text, keyed by measure name in the report's order. */
export function finalize(state: MeasureState, report: ReportConfig): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name] of measureList(report)) {
    const acc = state.measures[name];
    if (acc === undefined) throw new Error(`state has no measure "${name}" of report "${report.name}"`);
    switch (acc.fn) {
      case 'count': out[name] = String(acc.n); break;
      case 'sum': out[name] = formatDecimal(acc.sum); break;
      case 'avg': if (acc.n > 0) out[name] = formatDecimal(divideHalfEven(acc.sum, acc.n, AVG_SCALE)); break;
      case 'min': case 'max': if (acc.value !== null) out[name] = formatDecimal(acc.value); break;
      case 'uniq': out[name] = String(acc.values.size); break;
    }
  }
  return out;
}

/** Values each measure could not take (missing, null, not an exact decimal), by measure name. */
export function skippedValues(state: MeasureState): Record<string, number> {
  return Object.fromEntries(Object.entries(state.measures).map(([name, acc]) => [name, acc.skipped]));
}

const Counts = { n: z.number().int().nonnegative(), skipped: z.number().int().nonnegative() };
const DecimalText = z.string().refine((text) => toDecimal(text) !== undefined, 'not decimal text');
const AccumulatorJson = z.discriminatedUnion('fn', [
  z.strictObject({ fn: z.literal('count'), ...Counts }),
  z.strictObject({ fn: z.enum(['sum', 'avg']), ...Counts, sum: DecimalText }),
  z.strictObject({ fn: z.enum(['min', 'max']), ...Counts, value: DecimalText.nullable() }),
  z.strictObject({ fn: z.literal('uniq'), ...Counts, values: z.array(z.string()) }),
]);
const StateJson = z.strictObject({
  events: z.number().int().nonnegative(),
  knownAt: z.number().int().nullable(),
  measures: z.record(z.string(), AccumulatorJson),
});
export type MeasureStateJson = z.infer<typeof StateJson>;

/** A plain JSON value for snapshots: decimals as canonical text, uniq values sorted so equal states serialise identically. */
export function serializeState(state: MeasureState): MeasureStateJson {
  const measures: MeasureStateJson['measures'] = {};
  for (const [name, acc] of Object.entries(state.measures)) {
    const counts = { n: acc.n, skipped: acc.skipped };
    switch (acc.fn) {
      case 'count': measures[name] = { fn: acc.fn, ...counts }; break;
      case 'sum': case 'avg': measures[name] = { fn: acc.fn, ...counts, sum: formatDecimal(acc.sum) }; break;
      case 'min': case 'max': measures[name] = { fn: acc.fn, ...counts, value: acc.value === null ? null : formatDecimal(acc.value) }; break;
      case 'uniq': measures[name] = { fn: acc.fn, ...counts, values: [...acc.values].sort() }; break;
    }
  }
  return { events: state.events, knownAt: state.knownAt, measures };
}

/**
 * Restores a snapshot for `report`. A snapshot taken under a different definition of
 * the report (a measure added, removed or changed) is refused rather than silently
 * mixed: the figures must then be rebuilt with `tidemark replay`.
 */
export function deserializeState(json: unknown, report: ReportConfig): MeasureState {
  const parsed = StateJson.safeParse(json);
  if (!parsed.success) throw new Error(`invalid measure state snapshot for report "${report.name}": ${parsed.error.issues[0]?.message ?? 'bad shape'}`);
  const { events, knownAt, measures: stored } = parsed.data;
  const expected = measureList(report);
  const mismatch = Object.keys(stored).length !== expected.length || expected.some(([name, m]) => stored[name]?.fn !== m.fn);
  if (mismatch) throw new Error(`measure state snapshot does not match the current definition of report "${report.name}"; rebuild it with tidemark replay`);
  const measures: Record<string, MeasureAccumulator> = {};
  for (const [name, acc] of Object.entries(stored)) {
    switch (acc.fn) {
      case 'count': measures[name] = { ...acc }; break;
      case 'sum': case 'avg': measures[name] = { ...acc, sum: new Decimal(acc.sum) }; break;
      case 'min': case 'max': measures[name] = { ...acc, value: acc.value === null ? null : new Decimal(acc.value) }; break;
      case 'uniq': measures[name] = { ...acc, values: new Set(acc.values) }; break;
    }
  }
  return { events, knownAt, measures };
}
