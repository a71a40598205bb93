/**
 * Every measure function a report can use, in one registry: its config name, what it
 * keeps between events (accumulator: empty, add, merge), its figure (finalize, in
 * canonical decimal text), its snapshot shape, its SQL over the event store (the daily
 * check and replay) and its SQL over the realtime table (merging each instance's
 * partial figure). A new function is one name in MEASURE_FNS, one `Kept` entry and one
 * MEASURES entry; leaving one out does not compile, and nothing else switches on the name.
 *
 * Semantics (the same in memory and in SQL):
 * - `count` without a field counts every event; with a field it counts the events whose
 *   field is present and not null (SQL `count(x)`).
 * - `sum`, `min`, `max`, `avg` take the field as an exact decimal (toDecimal); a
 *   missing, null or non-decimal value is skipped for that measure only and counted in
 *   its `skipped`, so a bad feed is visible instead of silently shrinking a total.
 * - `sum` of no values is "0" (as ClickHouse `sum`); `min`, `max` and `avg` of no values
 *   have no figure (finalize gives undefined).
 * - `avg` is the exact sum divided by the number of values, rounded half-even to
 *   AVG_SCALE places.
 * - `uniq` is the exact number of distinct values, compared by canonical JSON (so "7"
 *   and 7 are two values, {"a":1,"b":2} and {"b":2,"a":1} one); null and missing skip.
 */
import { z } from 'zod';
import { canonicalJson } from './canonical.ts';
import { AVG_SCALE, Decimal, divideHalfEven, formatDecimal, toDecimal } from './decimal.ts';

export const MEASURE_FNS = ['count', 'sum', 'min', 'max', 'avg', 'uniq'] as const;
export type MeasureFn = (typeof MEASURE_FNS)[number];

/** What each function keeps between events, besides the counts every one keeps. */
interface Kept {
  count: Record<never, never>;
  sum: { sum: Decimal };
  avg: { sum: Decimal };
  min: { value: Decimal | null };
  max: { value: Decimal | null };
  uniq: { values: Set<string> };
}

/** `n` counts the values a measure took, `skipped` the events whose value it could not take. */
type Counts = { n: number; skipped: number };
export type AccumulatorOf<F extends MeasureFn> = { readonly fn: F } & Counts & Kept[F];
export type MeasureAccumulator = { [F in MeasureFn]: AccumulatorOf<F> }[MeasureFn];

/**
 * The event store's columns, as SQL, for one measure's field (the sink knows the table):
 * `decimal` the field's exact decimal, `typed` whether it has one, `raw` its JSON text,
 * `present` whether it is present and not null; `everyEvent` when no field is configured.
 */
export type DailyColumns = { everyEvent: boolean; decimal: string; typed: string; raw: string; present: string };
/** `value`: the figure's SQL (read back as text); `values`: how many values it took, when finalizing needs it. */
export type DailySelect = { value: string; values?: string };

/**
 * The realtime table's columns, as SQL, for one measure: each instance's figure, whether
 * it has one, its named parts and its distinct values.
 */
export type RealtimeColumns = { figure: string; has: string; part: (name: string) => string; values: string };
/** What an instance writes beside its figure so that instances merge exactly. */
export type RealtimeCarry = { parts?: Record<string, string>; values?: string[] };

export interface MeasureSpec<F extends MeasureFn> {
  /** whether the config must name a field */
  readonly needsField: boolean;
  empty(): Kept[F];
  /** Folds one event's field value (`everyEvent`: no field configured) in place; false when the value is skipped. */
  add(acc: AccumulatorOf<F>, raw: unknown, everyEvent: boolean): boolean;
  merge(a: AccumulatorOf<F>, b: AccumulatorOf<F>): Kept[F];
  /** Canonical decimal text; undefined when there is no figure. */
  finalize(acc: AccumulatorOf<F>): string | undefined;
  /** Snapshot fields (plain JSON), their schema, and back. */
  readonly snapshot: { readonly shape: z.ZodRawShape; save(acc: AccumulatorOf<F>): Record<string, unknown>; load(json: Record<string, unknown>): Kept[F] };
  /** The figure over the event store: the select, and the figure from what it returned. */
  readonly daily: { select(columns: DailyColumns): DailySelect; figure(value: string, values: number): string | undefined };
  /** The figure over the realtime table: what an instance writes, and how the instances' rows merge. */
  readonly realtime: { carry(acc: AccumulatorOf<F>): RealtimeCarry; merge(columns: RealtimeColumns): string };
}

export type MeasureRegistry = { readonly [F in MeasureFn]: MeasureSpec<F> };

const DecimalText = z.string().refine((text) => toDecimal(text) !== undefined, 'not decimal text');
const NO_CARRY: RealtimeCarry = {};

const sumLike = {
  needsField: true,
  empty: () => ({ sum: new Decimal(0) }),
  add(acc: { sum: Decimal }, raw: unknown): boolean {
    const value = toDecimal(raw);
    if (value === undefined) return false;
    acc.sum = acc.sum.plus(value);
    return true;
  },
  merge: (a: { sum: Decimal }, b: { sum: Decimal }) => ({ sum: a.sum.plus(b.sum) }),
  snapshot: {
    shape: { sum: DecimalText },
    save: (acc: { sum: Decimal }) => ({ sum: formatDecimal(acc.sum) }),
    load: (json: Record<string, unknown>) => ({ sum: new Decimal(json.sum as string) }),
  },
};
const sumSelect = (c: DailyColumns): DailySelect => ({ value: `sumIf(${c.decimal}, ${c.typed})`, values: `countIf(${c.typed})` });

function extremum<F extends 'min' | 'max'>(fn: F): MeasureSpec<F> {
  const better = (candidate: Decimal, current: Decimal | null): boolean => current === null || (fn === 'min' ? candidate.lt(current) : candidate.gt(current));
  return {
    needsField: true,
    empty: () => ({ value: null }),
    add(acc, raw) {
      const value = toDecimal(raw);
      if (value === undefined) return false;
      if (better(value, acc.value)) acc.value = value;
      return true;
    },
    merge: (a, b) => ({ value: b.value !== null && better(b.value, a.value) ? b.value : a.value }),
    finalize: (acc) => (acc.value === null ? undefined : formatDecimal(acc.value)),
    snapshot: {
      shape: { value: DecimalText.nullable() },
      save: (acc) => ({ value: acc.value === null ? null : formatDecimal(acc.value) }),
      load: (json) => ({ value: json.value === null ? null : new Decimal(json.value as string) }),
    },
    daily: {
      select: (c) => ({ value: `${fn}If(${c.decimal}, ${c.typed})`, values: `countIf(${c.typed})` }),
      figure: (value, values) => (values > 0 ? formatDecimal(new Decimal(value)) : undefined),
    },
    realtime: { carry: () => NO_CARRY, merge: (c) => `${fn}If(${c.figure}, ${c.has})` },
  };
}

export const MEASURES: MeasureRegistry = {
  count: {
    needsField: false,
    empty: () => ({}),
    add: (_acc, raw, everyEvent) => everyEvent || raw != null,
    merge: () => ({}),
    finalize: (acc) => String(acc.n),
    snapshot: { shape: {}, save: () => ({}), load: () => ({}) },
    daily: {
      select: (c) => ({ value: c.everyEvent ? 'count()' : `countIf(${c.present})` }),
      figure: (value) => value,
    },
    realtime: { carry: () => NO_CARRY, merge: (c) => `sum(${c.figure})` },
  },
  sum: {
    ...sumLike,
    finalize: (acc) => formatDecimal(acc.sum),
    daily: { select: sumSelect, figure: (value) => formatDecimal(new Decimal(value)) },
    realtime: { carry: () => NO_CARRY, merge: (c) => `sum(${c.figure})` },
  },
  avg: {
    ...sumLike,
    finalize: (acc) => (acc.n > 0 ? formatDecimal(divideHalfEven(acc.sum, acc.n, AVG_SCALE)) : undefined),
    daily: { select: sumSelect, figure: (value, values) => (values > 0 ? formatDecimal(divideHalfEven(new Decimal(value), values, AVG_SCALE)) : undefined) },
    realtime: {
      carry: (acc) => ({ parts: { sum: formatDecimal(acc.sum), n: String(acc.n) } }),
      merge: (c) => `if(sum(${c.part('n')}) = 0, NULL, toDecimal256(sum(${c.part('sum')}) / sum(${c.part('n')}), ${AVG_SCALE}))`,
    },
  },
  min: extremum('min'),
  max: extremum('max'),
  uniq: {
    needsField: true,
    empty: () => ({ values: new Set<string>() }),
    add(acc, raw) {
      if (raw == null) return false;
      acc.values.add(canonicalJson(raw));
      return true;
    },
    merge: (a, b) => ({ values: new Set([...a.values, ...b.values]) }),
    finalize: (acc) => String(acc.values.size),
    snapshot: {
      shape: { values: z.array(z.string()) },
      // sorted, so equal states serialise identically
      save: (acc) => ({ values: [...acc.values].sort() }),
      load: (json) => ({ values: new Set(json.values as string[]) }),
    },
    daily: {
      select: (c) => ({ value: `uniqExactIf(${c.raw}, ${c.present})` }),
      figure: (value) => value,
    },
    realtime: { carry: (acc) => ({ values: [...acc.values] }), merge: (c) => `length(groupUniqArrayArray(${c.values}))` },
  },
};

/**
 * The spec of one function. The registry is indexed by the accumulator's own `fn`, so
 * the pairing is right by construction; TypeScript cannot follow that correlation
 * through a union, hence the one widening here instead of one per caller.
 */
const specOf = (fn: MeasureFn): MeasureSpec<MeasureFn> => MEASURES[fn] as MeasureSpec<MeasureFn>;

/** Functions that may go without a field (their config names, for messages). */
export const FIELDLESS_FNS = MEASURE_FNS.filter((fn) => !MEASURES[fn].needsField);
export const needsField = (fn: MeasureFn): boolean => MEASURES[fn].needsField;

export const emptyAccumulator = (fn: MeasureFn): MeasureAccumulator => ({ fn, n: 0, skipped: 0, ...specOf(fn).empty() }) as MeasureAccumulator;

/** Folds one value in place (`everyEvent`: no field is configured, the measure counts every event). */
export function addValue(acc: MeasureAccumulator, raw: unknown, everyEvent: boolean): void {
  if (specOf(acc.fn).add(acc, raw, everyEvent)) acc.n += 1;
  else acc.skipped += 1;
}

/** A new accumulator holding both (same function; neither is modified). */
export const mergeAccumulators = (a: MeasureAccumulator, b: MeasureAccumulator): MeasureAccumulator =>
  ({ fn: a.fn, n: a.n + b.n, skipped: a.skipped + b.skipped, ...specOf(a.fn).merge(a, b) }) as MeasureAccumulator;

export const finalizeAccumulator = (acc: MeasureAccumulator): string | undefined => specOf(acc.fn).finalize(acc);

const Counts = { n: z.number().int().nonnegative(), skipped: z.number().int().nonnegative() };
/** A snapshot of any accumulator: its function, its counts and what that function keeps. */
export type AccumulatorJson = { fn: MeasureFn; n: number; skipped: number } & Record<string, unknown>;
const accumulatorSchemas = MEASURE_FNS.map((fn) => z.strictObject({ fn: z.literal(fn), ...Counts, ...MEASURES[fn].snapshot.shape }));
// built from the registry, so zod sees an array where it wants a non-empty tuple
export const AccumulatorJson = z.discriminatedUnion('fn', accumulatorSchemas as [(typeof accumulatorSchemas)[number], ...typeof accumulatorSchemas]) as unknown as z.ZodType<AccumulatorJson>;

export const saveAccumulator = (acc: MeasureAccumulator): AccumulatorJson => ({ fn: acc.fn, n: acc.n, skipped: acc.skipped, ...specOf(acc.fn).snapshot.save(acc) });

/** From a snapshot AccumulatorJson has parsed. */
export const loadAccumulator = (json: AccumulatorJson): MeasureAccumulator =>
  ({ fn: json.fn, n: json.n, skipped: json.skipped, ...specOf(json.fn).snapshot.load(json) }) as MeasureAccumulator;

export const dailySelect = (fn: MeasureFn, columns: DailyColumns): DailySelect => specOf(fn).daily.select(columns);
export const dailyFigure = (fn: MeasureFn, value: string, values: number): string | undefined => specOf(fn).daily.figure(value, values);

export const realtimeCarry = (acc: MeasureAccumulator): RealtimeCarry => specOf(acc.fn).realtime.carry(acc);
export const realtimeMerge = (fn: MeasureFn, columns: RealtimeColumns): string => specOf(fn).realtime.merge(columns);
