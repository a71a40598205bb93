/**
 * A deliberately plain reference for the projection logic: every figure is computed
 * from the full list of events at once, with no accumulators, no merging and no
 * incremental state, so the property tests can hold the real modules against it.
 * It shares only the separately unit-tested businessDay and groupKey.
 */
import { parseConfig, type ReportConfig } from '../../src/core/config.ts';
import { Decimal, toDecimal } from '../../src/core/decimal.ts';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { businessDay, groupKey, matchesReport } from '../../src/processors/logic/index.ts';

/** Division wide enough that rounding the quotient to 10 places cannot be a double rounding for test-sized inputs. */
const Wide = Decimal.clone({ precision: 300 });

const text = (value: Decimal): string => (value.isZero() ? '0' : value.toFixed());

const sortedKeys = (_key: string, value: unknown): unknown =>
  value !== null && typeof value === 'object' && !Array.isArray(value)
    ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : value;

/** Each measure of the report over exactly these events, in canonical decimal text. */
export function oracleMeasures(report: ReportConfig, events: readonly TidemarkEvent[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, measure] of Object.entries(report.measures)) {
    const field = measure.field;
    const raw = events.map((e) => (field !== undefined && Object.hasOwn(e.data, field) ? e.data[field] : undefined));
    const present = raw.filter((v) => v !== undefined && v !== null);
    const numbers = raw.map(toDecimal).filter((d): d is Decimal => d !== undefined);
    const sum = numbers.reduce((a, b) => a.plus(b), new Decimal(0));
    switch (measure.fn) {
      case 'count': out[name] = String(field === undefined ? events.length : present.length); break;
      case 'uniq': out[name] = String(new Set(present.map((v) => JSON.stringify(v, sortedKeys))).size); break;
      case 'sum': out[name] = text(sum); break;
      case 'min': if (numbers.length) out[name] = text(Decimal.min(...numbers)); break;
      case 'max': if (numbers.length) out[name] = text(Decimal.max(...numbers)); break;
      case 'avg':
        if (numbers.length) out[name] = text(new Decimal(new Wide(sum.toFixed()).div(numbers.length).toDecimalPlaces(10, Decimal.ROUND_HALF_EVEN).toFixed()));
        break;
    }
  }
  return out;
}

export interface OracleFigure {
  day: string;
  group: string;
  events: number;
  knownAt: number;
  measures: Record<string, string>;
}

export const dayGroupKey = (day: string, group: string): string => JSON.stringify([day, group]);

/** Per (business day, group): the figure as known at `asOfMs` (events with receivedAt <= asOfMs); the final figure by default. */
export function oracleDaily(report: ReportConfig, events: readonly TidemarkEvent[], asOfMs = Infinity): Map<string, OracleFigure> {
  const buckets = new Map<string, { day: string; group: string; events: TidemarkEvent[] }>();
  for (const event of events) {
    if (!matchesReport(report, event) || event.receivedAt > asOfMs) continue;
    const day = businessDay(event.occurredAt, report.timeZone);
    const group = groupKey(report, event);
    const key = dayGroupKey(day, group);
    if (!buckets.has(key)) buckets.set(key, { day, group, events: [] });
    buckets.get(key)!.events.push(event);
  }
  const figures = new Map<string, OracleFigure>();
  for (const [key, bucket] of buckets) {
    const knownAt = Math.max(...bucket.events.map((e) => e.receivedAt));
    figures.set(key, { day: bucket.day, group: bucket.group, events: bucket.events.length, knownAt, measures: oracleMeasures(report, bucket.events) });
  }
  return figures;
}

export type WindowStep = { kind: 'event'; event: TidemarkEvent } | { kind: 'advance'; watermark: number };

export const windowKey = (w: { size: number; slide: number; start: number; group: string }): string => `${w.size}/${w.slide}/${w.start}/${w.group}`;

/**
 * For a sequence of adds and watermark advances: each window's expected content — the
 * events of its span that were added while the highest watermark so far was below its
 * end. Windows are found by scanning candidate starts, not by windowsFor.
 */
export function oracleWindows(report: ReportConfig, steps: readonly WindowStep[]): Map<string, { events: TidemarkEvent[]; measures: Record<string, string> }> {
  let closedThrough = -Infinity;
  const contents = new Map<string, TidemarkEvent[]>();
  for (const step of steps) {
    if (step.kind === 'advance') {
      closedThrough = Math.max(closedThrough, step.watermark);
      continue;
    }
    const t = step.event.occurredAt;
    for (const { size, slide } of report.windows) {
      for (let k = Math.floor((t - size) / slide) - 1; k <= Math.floor(t / slide) + 1; k++) {
        const start = k * slide;
        if (!(start <= t && t < start + size) || start + size <= closedThrough) continue;
        const key = windowKey({ size, slide, start, group: groupKey(report, step.event) });
        contents.set(key, [...(contents.get(key) ?? []), step.event]);
      }
    }
  }
  return new Map([...contents].map(([key, events]) => [key, { events, measures: oracleMeasures(report, events) }]));
}

/** A report through the real config schema, so durations and defaults are what production sees. */
export function makeReport(report: Record<string, unknown>): ReportConfig {
  return parseConfig({ reports: [{ name: 'r', types: ['sale'], measures: { n: { fn: 'count' } }, ...report }] }).reports[0]!;
}

let nextSeq = 0;

export function makeEvent(event: Partial<TidemarkEvent> = {}): TidemarkEvent {
  nextSeq += 1;
  return { id: `e-${nextSeq}`, type: 'sale', source: 'store-1', key: null, occurredAt: 0, receivedAt: 0, data: {}, seq: nextSeq, ...event };
}
