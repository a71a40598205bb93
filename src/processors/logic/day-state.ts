/**
 * The mergeable state of one (report, business day, group): what its figure is made of,
 * so that a revision adds the events that arrived since the last one instead of
 * recomputing the day. Per measure a part `{ v, n }` in exact decimal text:
 * - `count`: v the count;
 * - `sum`, `avg`: v the exact sum, n the number of values (avg = v / n, half-even);
 * - `min`, `max`: v the extremum, n the number of values (no figure while n = 0);
 * - `uniq`: v the number of distinct values. Distinctness needs the values themselves:
 *   the caller keeps them (daily_uniq) and hands over, for a delta, only how many of its
 *   values are new to the group, so merging adds.
 * Figures follow the same rules as the in-memory accumulators (measures.ts).
 */
import type { ReportConfig } from '../../core/config.ts';
import { AVG_SCALE, Decimal, divideHalfEven, formatDecimal } from '../../core/decimal.ts';
import type { Observation } from './revisions.ts';

export type MeasurePart = { v: string; n: number };

export type GroupState = {
  events: number;
  /** latest receivedAt included (0 while empty) */
  knownAt: number;
  parts: Record<string, MeasurePart>;
};

const add = (a: string, b: string): string => formatDecimal(new Decimal(a).plus(b));

function mergePart(fn: ReportConfig['measures'][string]['fn'], base: MeasurePart | undefined, delta: MeasurePart): MeasurePart {
  if (!base) return delta;
  switch (fn) {
    case 'count':
    case 'uniq':
    case 'sum':
    case 'avg':
      return { v: add(base.v, delta.v), n: base.n + delta.n };
    case 'min':
    case 'max': {
      if (delta.n === 0) return base;
      if (base.n === 0) return delta;
      const pick = fn === 'min' ? Decimal.min(base.v, delta.v) : Decimal.max(base.v, delta.v);
      return { v: formatDecimal(pick), n: base.n + delta.n };
    }
  }
}

/** The state after `delta` (events new to the group, each counted once) joins `base`. */
export function mergeGroupState(report: ReportConfig, base: GroupState | undefined, delta: GroupState): GroupState {
  if (!base) return delta;
  const parts: Record<string, MeasurePart> = {};
  for (const [name, measure] of Object.entries(report.measures)) {
    const d = delta.parts[name] ?? { v: '0', n: 0 };
    parts[name] = mergePart(measure.fn, base.parts[name], d);
  }
  return { events: base.events + delta.events, knownAt: Math.max(base.knownAt, delta.knownAt), parts };
}

/** The figure a reader sees, in canonical decimal text. */
export function observeGroup(report: ReportConfig, state: GroupState): Observation {
  const measures: Record<string, string> = {};
  for (const [name, measure] of Object.entries(report.measures)) {
    const part = state.parts[name] ?? { v: '0', n: 0 };
    switch (measure.fn) {
      case 'count':
      case 'uniq':
      case 'sum':
        measures[name] = formatDecimal(new Decimal(part.v));
        break;
      case 'avg':
        if (part.n > 0) measures[name] = formatDecimal(divideHalfEven(new Decimal(part.v), part.n, AVG_SCALE));
        break;
      case 'min':
      case 'max':
        if (part.n > 0) measures[name] = formatDecimal(new Decimal(part.v));
        break;
    }
  }
  return { measures, events: state.events, knownAt: state.knownAt };
}
