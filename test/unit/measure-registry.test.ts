import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AccumulatorJson,
  addValue,
  emptyAccumulator,
  finalizeAccumulator,
  loadAccumulator,
  MEASURE_FNS,
  MEASURES,
  mergeAccumulators,
  saveAccumulator,
  type MeasureAccumulator,
  type MeasureFn,
  type MeasureRegistry,
  type MeasureSpec,
} from '../../src/core/measures.ts';
import { parseConfig } from '../../src/core/config.ts';
import { oracleMeasures, type OracleEvent } from '../support/oracle.ts';

const fold = (fn: MeasureFn, values: readonly unknown[], everyEvent = false): MeasureAccumulator => {
  const acc = emptyAccumulator(fn);
  for (const value of values) addValue(acc, value, everyEvent);
  return acc;
};

/** The independent figure: the test oracle over events carrying the values in `x` (`everyEvent`: the measure names no field). */
const oracleFigure = (fn: MeasureFn, values: readonly unknown[], everyEvent: boolean): string | undefined => {
  const field = everyEvent ? undefined : 'x';
  const events: OracleEvent[] = values.map((x, i) => ({ type: 't', source: 's', key: null, occurredAt: i, receivedAt: i, data: x === undefined ? {} : { x } }));
  const report = { types: ['t'], timeZone: 'UTC', groupBy: [], windows: [], measures: { m: field === undefined ? { fn } : { fn, field } } };
  return oracleMeasures(report, events).m;
};

const decimalText = fc.tuple(fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }), fc.integer({ min: 0, max: 12 })).map(([digits, scale]) => {
  const sign = digits < 0n ? '-' : '';
  const text = (digits < 0n ? -digits : digits).toString().padStart(scale + 1, '0');
  return scale === 0 ? `${sign}${text}` : `${sign}${text.slice(0, -scale)}.${text.slice(-scale)}`;
});
/** What a field may hold: decimal text, small JSON numbers, nothing, null, junk, objects (uniq compares them as JSON). */
const rawValue = fc.oneof(
  decimalText,
  fc.integer({ min: -1000, max: 1000 }),
  fc.constantFrom(undefined, null, 'x', '', '1e3', 0.5, true),
  fc.dictionary(fc.constantFrom('a', 'b'), fc.integer({ min: 0, max: 2 })),
);

describe('measure registry', () => {
  it('names every function once, and the config takes exactly those names', () => {
    expect(Object.keys(MEASURES).sort()).toEqual([...MEASURE_FNS].sort());
    for (const fn of MEASURE_FNS) {
      const measure = MEASURES[fn].needsField ? { fn, field: 'x' } : { fn };
      expect(parseConfig({ reports: [{ name: 'r', types: ['t'], measures: { m: measure } }] }).reports[0]!.measures.m!.fn).toBe(fn);
    }
    expect(() => parseConfig({ reports: [{ name: 'r', types: ['t'], measures: { m: { fn: 'median', field: 'x' } } }] })).toThrow();
    expect(() => parseConfig({ reports: [{ name: 'r', types: ['t'], measures: { m: { fn: 'sum' } } }] })).toThrow(/field is required unless fn is count/);
  });

  it('gives the figures worked out by hand on a small feed', () => {
    // present and not null: "1.10", 2, "x", "-0.5", "2"; exact decimals: 1.10, 2, -0.5, 2
    const values = ['1.10', 2, null, 'x', '-0.5', '2', undefined];
    const figures = Object.fromEntries(MEASURE_FNS.map((fn) => [fn, finalizeAccumulator(fold(fn, values))]));
    expect(figures).toEqual({ count: '5', sum: '4.6', min: '-0.5', max: '2', avg: '1.15', uniq: '5' });
    expect(finalizeAccumulator(fold('count', values, true))).toBe('7');
    expect(fold('sum', values)).toMatchObject({ n: 4, skipped: 3 });
    expect(fold('uniq', values)).toMatchObject({ n: 5, skipped: 2 });
    // no values: sum is 0, the others that need a value have no figure
    expect(Object.fromEntries(MEASURE_FNS.map((fn) => [fn, finalizeAccumulator(fold(fn, [null]))]))).toEqual({ count: '0', sum: '0', min: undefined, max: undefined, avg: undefined, uniq: '0' });
    // avg rounds half-even to 10 places: 2/3 and 0.00000000005/1 (a tie, to the even 0)
    expect(finalizeAccumulator(fold('avg', ['1', '1', '0']))).toBe('0.6666666667');
    expect(finalizeAccumulator(fold('avg', ['0.00000000005']))).toBe('0');
  });

  it('each function, folded in two parts and merged, equals the oracle over the whole feed; its snapshot restores it', () => {
    fc.assert(
      fc.property(fc.constantFrom(...MEASURE_FNS), fc.array(rawValue, { maxLength: 30 }), fc.nat(), fc.boolean(), (fn, values, cut, everyEvent) => {
        const noField = everyEvent && !MEASURES[fn].needsField;
        const at = values.length === 0 ? 0 : cut % (values.length + 1);
        const left = fold(fn, values.slice(0, at), noField);
        const right = fold(fn, values.slice(at), noField);
        const merged = mergeAccumulators(left, right);
        const expected = oracleFigure(fn, values, noField);
        expect(finalizeAccumulator(merged)).toBe(expected);
        expect(finalizeAccumulator(mergeAccumulators(right, left))).toBe(expected);
        expect(finalizeAccumulator(fold(fn, values, noField))).toBe(expected);
        expect(merged.n + merged.skipped).toBe(values.length);
        const json = JSON.parse(JSON.stringify(saveAccumulator(merged))) as unknown;
        const restored = loadAccumulator(AccumulatorJson.parse(json));
        expect(finalizeAccumulator(restored)).toBe(expected);
        expect(saveAccumulator(restored)).toEqual(saveAccumulator(merged));
      }),
      { numRuns: 300 },
    );
  });

  it('leaves both inputs of a merge as they were', () => {
    for (const fn of MEASURE_FNS) {
      const a = fold(fn, ['1', '2']);
      const b = fold(fn, ['3']);
      const before = [saveAccumulator(a), saveAccumulator(b)];
      mergeAccumulators(a, b);
      expect([saveAccumulator(a), saveAccumulator(b)]).toEqual(before);
    }
  });

  it('is exhaustive at the type level (checked by tsc)', () => {
    // @ts-expect-error a registry that leaves a function out does not compile
    const partial: MeasureRegistry = { count: MEASURES.count, sum: MEASURES.sum, min: MEASURES.min, max: MEASURES.max, avg: MEASURES.avg };
    // @ts-expect-error one function's spec does not stand in for another's (their accumulators differ)
    const swapped: MeasureSpec<'sum'> = MEASURES.uniq;
    // @ts-expect-error a registry over one more name than it has entries for does not compile
    const wider: { readonly [F in MeasureFn | 'median']: MeasureSpec<F extends MeasureFn ? F : never> } = MEASURES;
    expect([partial, swapped, wider].every((r) => r !== undefined)).toBe(true);
  });
});
