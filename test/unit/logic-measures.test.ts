import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Decimal, divideHalfEven, formatDecimal } from '../../src/core/decimal.ts';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { addEvent, deserializeState, emptyState, finalize, mergeStates, serializeState, skippedValues, type MeasureState } from '../../src/processors/logic/measures.ts';
import { makeEvent, makeReport } from '../support/fixtures.ts';
import { oracleMeasures } from '../support/oracle.ts';

const report = makeReport({
  measures: {
    orders: { fn: 'count' },
    priced: { fn: 'count', field: 'amount' },
    amount: { fn: 'sum', field: 'amount' },
    lo: { fn: 'min', field: 'amount' },
    hi: { fn: 'max', field: 'amount' },
    mean: { fn: 'avg', field: 'amount' },
    customers: { fn: 'uniq', field: 'customer' },
  },
});

const fold = (events: readonly TidemarkEvent[]): MeasureState => {
  const state = emptyState(report);
  for (const event of events) addEvent(state, report, event);
  return state;
};

const withData = (...data: Record<string, unknown>[]): TidemarkEvent[] => data.map((d, i) => makeEvent({ data: d, receivedAt: 1000 + i }));

describe('canonical decimal text', () => {
  it('is fixed notation with trailing zeros trimmed and no negative zero', () => {
    expect(formatDecimal(new Decimal('129.90'))).toBe('129.9');
    expect(formatDecimal(new Decimal('1000000.0000000000'))).toBe('1000000');
    expect(formatDecimal(new Decimal('1e21'))).toBe('1000000000000000000000');
    expect(formatDecimal(new Decimal('1.5e-12'))).toBe('0.0000000000015');
    expect(formatDecimal(new Decimal('-0.000'))).toBe('0');
    expect(formatDecimal(new Decimal('-0.05'))).toBe('-0.05');
  });

  it('divides half-even on exact integers', () => {
    expect(divideHalfEven(new Decimal('0.00000000005'), 1, 10).toFixed()).toBe('0');
    expect(divideHalfEven(new Decimal('0.00000000015'), 1, 10).toFixed()).toBe('0.0000000002');
    expect(divideHalfEven(new Decimal('-0.00000000025'), 1, 10).toFixed()).toBe('-0.0000000002');
    expect(divideHalfEven(new Decimal('2'), 3, 10).toFixed()).toBe('0.6666666667');
    expect(divideHalfEven(new Decimal('-2'), 3, 10).toFixed()).toBe('-0.6666666667');
    expect(divideHalfEven(new Decimal('10'), 4, 0).toFixed()).toBe('2');
    expect(divideHalfEven(new Decimal('14'), 4, 0).toFixed()).toBe('4');
  });
});

describe('measures', () => {
  it('computes every measure exactly', () => {
    const state = fold(withData(
      { amount: '129.90', customer: 'c-1' },
      { amount: 0.1, customer: 'c-2' },
      { amount: '-5', customer: 'c-1' },
    ));
    expect(finalize(state, report)).toEqual({
      orders: '3', priced: '3', amount: '125', lo: '-5', hi: '129.9', mean: '41.6666666667', customers: '2',
    });
    expect(state.events).toBe(3);
    expect(state.knownAt).toBe(1002);
  });

  it('skips missing and non-decimal values per measure but still counts the event', () => {
    const state = fold(withData(
      { amount: '10' },
      { amount: 'ten', customer: null },
      { amount: 12345678901234567, customer: 'c' }, // 17 digits: not exact as a JSON number
      { amount: null },
      {},
      { amount: true },
    ));
    expect(finalize(state, report)).toEqual({ orders: '6', priced: '4', amount: '10', lo: '10', hi: '10', mean: '10', customers: '1' });
    expect(skippedValues(state)).toEqual({ orders: 0, priced: 2, amount: 5, lo: 5, hi: 5, mean: 5, customers: 5 });
  });

  it('gives sum 0 and no min, max or avg when no value was usable', () => {
    expect(finalize(fold(withData({ amount: 'x' })), report)).toEqual({ orders: '1', priced: '1', amount: '0', customers: '0' });
    expect(finalize(emptyState(report), report)).toEqual({ orders: '0', priced: '0', amount: '0', customers: '0' });
  });

  it('counts uniq by canonical JSON: key order ignored, strings and numbers distinct', () => {
    const state = fold(withData({ customer: { a: 1, b: 2 } }, { customer: { b: 2, a: 1 } }, { customer: '7' }, { customer: 7 }, { customer: '007' }, { customer: 7.0 }));
    expect(finalize(state, report).customers).toBe('4');
  });

  it('reads only own data fields, never Object.prototype', () => {
    const proto = makeReport({ measures: { c: { fn: 'uniq', field: 'constructor' }, s: { fn: 'sum', field: 'toString' } } });
    const state = addEvent(emptyState(proto), proto, makeEvent({ data: {} }));
    expect(finalize(state, proto)).toEqual({ c: '0', s: '0' });
  });

  it('round-trips through JSON text', () => {
    const state = fold(withData({ amount: '1.10', customer: 'b' }, { amount: '-2', customer: 'a' }, { amount: 'bad' }));
    const json = JSON.parse(JSON.stringify(serializeState(state)));
    expect(json.measures.amount).toEqual({ fn: 'sum', n: 2, skipped: 1, sum: '-0.9' });
    expect(json.measures.customers.values).toEqual(['"a"', '"b"']);
    const restored = deserializeState(json, report);
    expect(serializeState(restored)).toEqual(serializeState(state));
    expect(finalize(addEvent(restored, report, makeEvent({ data: { amount: '0.9' } })), report).amount).toBe('0');
  });

  it('refuses a snapshot of another report definition or a malformed one', () => {
    const json = serializeState(fold(withData({ amount: '1' })));
    const changed = makeReport({ measures: { ...report.measures, amount: { fn: 'max', field: 'amount' } } });
    expect(() => deserializeState(json, changed)).toThrow(/tidemark replay/);
    expect(() => deserializeState({ ...json, events: -1 }, report)).toThrow(/invalid measure state/);
    expect(() => deserializeState({ ...json, measures: { ...json.measures, amount: { fn: 'sum', n: 1, skipped: 0, sum: '1e' } } }, report)).toThrow(/invalid measure state/);
    expect(() => mergeStates(fold([]), emptyState(changed))).toThrow(/different report definitions/);
  });

  // binary floating point is already off here (100000.00000133288)
  it('adds a million "0.1" to exactly "100000"', () => {
    const sumOnly = makeReport({ measures: { amount: { fn: 'sum', field: 'amount' } } });
    const state = emptyState(sumOnly);
    const event = makeEvent({ data: { amount: '0.1' } });
    for (let i = 0; i < 1_000_000; i++) addEvent(state, sumOnly, event);
    expect(finalize(state, sumOnly)).toEqual({ amount: '100000' });
    expect(state.events).toBe(1_000_000);
  }, 60_000);
});

/** digits × 10^-scale written with exactly `scale` places, trailing zeros kept ("1.10"), as senders write amounts. */
function fixedText(digits: bigint, scale: number): string {
  const abs = (digits < 0n ? -digits : digits).toString().padStart(scale + 1, '0');
  const text = scale === 0 ? abs : `${abs.slice(0, -scale)}.${abs.slice(-scale)}`;
  return digits < 0n ? `-${text}` : text;
}

const decimalText = fc
  .tuple(fc.bigInt({ min: -(10n ** 14n), max: 10n ** 14n }), fc.integer({ min: 0, max: 8 }))
  .map(([digits, scale]) => fixedText(digits, scale));
const amount = fc.oneof(
  { weight: 5, arbitrary: decimalText },
  { weight: 2, arbitrary: fc.integer({ min: -1_000_000, max: 1_000_000 }).map((cents) => cents / 100) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('12e-2', ' 7.50 ', 'abc', '', '1e', true, null, {}, [], 2 ** 60 + 0.5, 123456789012345678) },
  { weight: 1, arbitrary: fc.constant(undefined) },
);
const customer = fc.oneof(
  fc.constantFrom<unknown>('a', 'b', '007', '7', 7, 8, null, undefined, { a: 1, b: 2 }, { b: 2, a: 1 }, [1, 2]),
  fc.string({ maxLength: 3 }),
);
const eventArb = fc.record({ amount, customer, receivedAt: fc.integer({ min: 0, max: 1e6 }) }).map(({ amount: a, customer: c, receivedAt }) => {
  const data: Record<string, unknown> = {};
  if (a !== undefined) data.amount = a;
  if (c !== undefined) data.customer = c;
  return makeEvent({ data, receivedAt });
});

/** Merges states in an order and tree shape chosen by `choices`. */
function mergeInOrder(states: MeasureState[], choices: number[]): MeasureState {
  const pool = [...states];
  let i = 0;
  while (pool.length > 1) {
    const pick = (choices[i++ % Math.max(choices.length, 1)] ?? 0) % (pool.length - 1);
    const [a, b] = pool.splice(pick, 2) as [MeasureState, MeasureState];
    pool.splice(pick, 0, i % 2 === 0 ? mergeStates(a, b) : mergeStates(b, a));
  }
  return pool[0] ?? emptyState(report);
}

describe('measure properties (fast-check, seeded)', () => {
  it('states built over any partition, in any order, merged in any shape, equal the oracle', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(eventArb, fc.nat(5), fc.nat()), { maxLength: 80 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.boolean(),
        (tagged, choices, viaJson) => {
          const events = tagged.map(([event]) => event);
          const chunks: TidemarkEvent[][] = [[], [], [], [], [], []];
          for (const [event, part] of [...tagged].sort((a, b) => a[2] - b[2])) chunks[part]!.push(event);
          const states = chunks.map((chunk) => {
            const state = fold(chunk);
            return viaJson ? deserializeState(JSON.parse(JSON.stringify(serializeState(state))), report) : state;
          });
          const merged = mergeInOrder(states, choices);
          expect(finalize(merged, report)).toEqual(oracleMeasures(report, events));
          expect(merged.events).toBe(events.length);
          expect(merged.knownAt).toBe(events.length ? Math.max(...events.map((e) => e.receivedAt)) : null);
          for (const acc of Object.values(merged.measures)) expect(acc.n + acc.skipped).toBe(events.length);
        },
      ),
      { seed: 20261120, numRuns: 300 },
    );
  });

  it('merge is associative and commutative, and does not modify its inputs', () => {
    const stateArb = fc.array(eventArb, { maxLength: 15 }).map(fold);
    fc.assert(
      fc.property(stateArb, stateArb, stateArb, (a, b, c) => {
        const before = [a, b, c].map(serializeState);
        const left = serializeState(mergeStates(mergeStates(a, b), c));
        expect(serializeState(mergeStates(a, mergeStates(b, c)))).toEqual(left);
        expect(serializeState(mergeStates(c, mergeStates(b, a)))).toEqual(left);
        expect([a, b, c].map(serializeState)).toEqual(before);
      }),
      { seed: 7, numRuns: 200 },
    );
  });
});
