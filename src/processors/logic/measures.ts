/**
 * Measure states for one (report, business day, group) — or one realtime window: the
 * report's measures, each an accumulator of its function in the registry
 * (src/core/measures.ts, which says what each function means).
 *
 * Canonical decimal text (every figure `finalize` returns): plain fixed notation, no
 * exponent, no trailing fractional zeros, no trailing ".", no "+" and no "-0"
 * ("1000000", "129.9", "-0.05", "0"). One value has exactly one text, so comparing
 * two figures as strings compares their values (the revision logic relies on it), and
 * no scale is imposed on a sum: it stays exact whatever scale the inputs carry. Any
 * ClickHouse Decimal(P, S) with S at least the inputs' scale parses it unchanged.
 * A measure with no figure (min, max, avg of no values) has no key in the result.
 *
 * Sums carry 60 significant digits (src/core/decimal.ts), far beyond Decimal(38, S).
 * A state does not de-duplicate event ids: the caller adds each event once.
 */
import { z } from 'zod';
import type { MeasureConfig, ReportConfig } from '../../core/config.ts';
import { dataField } from '../../core/canonical.ts';
import type { TidemarkEvent } from '../../core/envelope.ts';
import {
  AccumulatorJson,
  addValue,
  emptyAccumulator,
  finalizeAccumulator,
  loadAccumulator,
  mergeAccumulators,
  saveAccumulator,
  type MeasureAccumulator,
} from '../../core/measures.ts';

export type { MeasureAccumulator } from '../../core/measures.ts';

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

export function emptyState(report: ReportConfig): MeasureState {
  const measures: Record<string, MeasureAccumulator> = {};
  for (const [name, measure] of measureList(report)) measures[name] = emptyAccumulator(measure.fn);
  return { events: 0, knownAt: null, measures };
}

/**
 * Folds one event into `state` in place and returns it: a fresh object per event
 * would dominate the cost at tens of thousands of events a second. The caller has
 * already checked that the event belongs to the report (matchesReport).
 */
export function addEvent(state: MeasureState, report: ReportConfig, event: TidemarkEvent): MeasureState {
  state.events += 1;
  if (state.knownAt === null || event.receivedAt > state.knownAt) state.knownAt = event.receivedAt;
  for (const [name, measure] of measureList(report)) {
    const field = measure.field;
    addValue(state.measures[name]!, field === undefined ? undefined : dataField(event.data, field), field === undefined);
  }
  return state;
}

function mergeMeasure(name: string, a: MeasureAccumulator, b: MeasureAccumulator | undefined): MeasureAccumulator {
  if (b === undefined || b.fn !== a.fn) throw new Error(`cannot merge measure "${name}": the two states come from different report definitions`);
  return mergeAccumulators(a, b);
}

/** A new state holding both inputs (neither is modified); associative and commutative, so partial states from any processes and any partition combine to the same figures. */
export function mergeStates(a: MeasureState, b: MeasureState): MeasureState {
  const names = Object.keys(a.measures);
  if (names.length !== Object.keys(b.measures).length) throw new Error('cannot merge states of different report definitions');
  const measures: Record<string, MeasureAccumulator> = {};
  for (const name of names) measures[name] = mergeMeasure(name, a.measures[name]!, b.measures[name]);
  const knownAt = a.knownAt === null ? b.knownAt : b.knownAt === null ? a.knownAt : Math.max(a.knownAt, b.knownAt);
  return { events: a.events + b.events, knownAt, measures };
}

/** Figures in canonical decimal text, keyed by measure name in the report's order. */
export function finalize(state: MeasureState, report: ReportConfig): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name] of measureList(report)) {
    const acc = state.measures[name];
    if (acc === undefined) throw new Error(`state has no measure "${name}" of report "${report.name}"`);
    const figure = finalizeAccumulator(acc);
    if (figure !== undefined) out[name] = figure;
  }
  return out;
}

/** Values each measure could not take (missing, null, not an exact decimal), by measure name. */
export function skippedValues(state: MeasureState): Record<string, number> {
  return Object.fromEntries(Object.entries(state.measures).map(([name, acc]) => [name, acc.skipped]));
}

const StateJson = z.strictObject({
  events: z.number().int().nonnegative(),
  knownAt: z.number().int().nullable(),
  measures: z.record(z.string(), AccumulatorJson),
});
export type MeasureStateJson = z.infer<typeof StateJson>;

/** A plain JSON value for snapshots: decimals as canonical text, uniq values sorted so equal states serialise identically (each function's `snapshot` in the registry). */
export function serializeState(state: MeasureState): MeasureStateJson {
  const measures: MeasureStateJson['measures'] = {};
  for (const [name, acc] of Object.entries(state.measures)) measures[name] = saveAccumulator(acc);
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
  for (const [name, acc] of Object.entries(stored)) measures[name] = loadAccumulator(acc);
  return { events, knownAt, measures };
}
