/**
 * A deliberately plain reference for the projection logic: every figure is computed
 * from the full list of events at once, with no accumulators, no merging and no
 * incremental state, so the property tests can hold the real modules against it.
 * It imports nothing from src/: decimals are the BigInt reference in
 * reference-decimal.ts, business days come from Intl, group keys and uniq values
 * from JSON text with sorted keys, all written here from the contract.
 */
import { amountOf, compareRef, divideRef, refText, sumRef, type RefDecimal } from './reference-decimal.ts';

/** The parts of a report the oracle reads; a src ReportConfig fits it structurally. */
export interface OracleReport {
  readonly types: readonly string[];
  readonly timeZone: string;
  readonly groupBy: readonly string[];
  readonly measures: Readonly<Record<string, { readonly fn: string; readonly field?: string }>>;
  readonly windows: readonly { readonly size: number; readonly slide: number }[];
}

/** The parts of an event the oracle reads; a src TidemarkEvent fits it structurally. */
export interface OracleEvent {
  readonly type: string;
  readonly source: string;
  readonly key: string | null;
  readonly occurredAt: number;
  readonly receivedAt: number;
  readonly data: Readonly<Record<string, unknown>>;
}

/** The average's scale (SPEC: avg is rounded half-even to 10 places). */
const AVG_PLACES = 10;

const sortedKeys = (_key: string, value: unknown): unknown =>
  value !== null && typeof value === 'object' && !Array.isArray(value)
    ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : value;

/** One JSON text per JSON value: object keys sorted. */
const jsonText = (value: unknown): string => JSON.stringify(value ?? null, sortedKeys);

const ownField = (data: Readonly<Record<string, unknown>>, field: string): unknown => (Object.hasOwn(data, field) ? data[field] : undefined);

const matchesReport = (report: OracleReport, event: OracleEvent): boolean => report.types.includes(event.type);

/** The group: JSON array of the groupBy values (missing = null), or "" without groupBy. */
export function oracleGroup(report: OracleReport, event: OracleEvent): string {
  if (report.groupBy.length === 0) return '';
  const values = report.groupBy.map((field) => {
    if (field === 'source' || field === 'type' || field === 'key') return event[field];
    if (field.startsWith('data.')) return ownField(event.data, field.slice('data.'.length)) ?? null;
    throw new Error(`oracle: unknown groupBy field ${field}`);
  });
  return jsonText(values);
}

const dayFormats = new Map<string, Intl.DateTimeFormat>();

/** The calendar date of an instant in a time zone, read from Intl (the implementation uses @date-fns/tz). */
export function oracleDay(ms: number, timeZone: string): string {
  let format = dayFormats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hourCycle: 'h23' });
    dayFormats.set(timeZone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return `${String(parts.year).padStart(4, '0')}-${parts.month}-${parts.day}`;
}

/** Each measure of the report over exactly these events, in canonical decimal text. */
export function oracleMeasures(report: OracleReport, events: readonly OracleEvent[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, measure] of Object.entries(report.measures)) {
    const field = measure.field;
    const raw = events.map((e) => (field !== undefined ? ownField(e.data, field) : undefined));
    const present = raw.filter((v) => v !== undefined && v !== null);
    const numbers = raw.map(amountOf).filter((d): d is RefDecimal => d !== undefined);
    const sorted = [...numbers].sort(compareRef);
    switch (measure.fn) {
      case 'count': out[name] = String(field === undefined ? events.length : present.length); break;
      case 'uniq': out[name] = String(new Set(present.map(jsonText)).size); break;
      case 'sum': out[name] = refText(sumRef(numbers)); break;
      case 'min': if (sorted.length) out[name] = refText(sorted[0]!); break;
      case 'max': if (sorted.length) out[name] = refText(sorted[sorted.length - 1]!); break;
      case 'avg': if (numbers.length) out[name] = refText(divideRef(sumRef(numbers), numbers.length, AVG_PLACES)); break;
      default: throw new Error(`oracle: unknown measure function ${measure.fn}`);
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
export function oracleDaily(report: OracleReport, events: readonly OracleEvent[], asOfMs = Infinity): Map<string, OracleFigure> {
  const buckets = new Map<string, { day: string; group: string; events: OracleEvent[] }>();
  for (const event of events) {
    if (!matchesReport(report, event) || event.receivedAt > asOfMs) continue;
    const day = oracleDay(event.occurredAt, report.timeZone);
    const group = oracleGroup(report, event);
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

export type WindowStep<E extends OracleEvent = OracleEvent> = { kind: 'event'; event: E } | { kind: 'advance'; watermark: number };

export const windowKey = (w: { size: number; slide: number; start: number; group: string }): string => `${w.size}/${w.slide}/${w.start}/${w.group}`;

/**
 * For a sequence of adds and watermark advances: each window's expected content — the
 * events of its span that were added while the highest watermark so far was below its
 * end. Windows are found by scanning candidate starts, not by windowsFor.
 */
export function oracleWindows<E extends OracleEvent>(report: OracleReport, steps: readonly WindowStep<E>[]): Map<string, { events: E[]; measures: Record<string, string> }> {
  let closedThrough = -Infinity;
  const contents = new Map<string, E[]>();
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
        const key = windowKey({ size, slide, start, group: oracleGroup(report, step.event) });
        contents.set(key, [...(contents.get(key) ?? []), step.event]);
      }
    }
  }
  return new Map([...contents].map(([key, events]) => [key, { events, measures: oracleMeasures(report, events) }]));
}
