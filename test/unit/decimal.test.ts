import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isExactJsonNumber, toDecimal } from '../../src/core/decimal.ts';
import { amountOf, refText } from '../support/reference-decimal.ts';

/** toDecimal's value in canonical text, read through the BigInt reference so decimal.js formatting is not trusted either. */
const text = (value: unknown): string | undefined => {
  const d = toDecimal(value);
  return d === undefined ? undefined : refText(amountOf(d.toFixed())!);
};

describe('toDecimal', () => {
  it('reads decimal text exactly, trimmed, with or without sign, point or exponent', () => {
    expect(text('129.90')).toBe('129.9');
    expect(text(' 7.50 ')).toBe('7.5');
    expect(text('-0.05')).toBe('-0.05');
    expect(text('+3')).toBe('3');
    expect(text('.5')).toBe('0.5');
    expect(text('5.')).toBe('5');
    expect(text('12e-2')).toBe('0.12');
    expect(text('1.5E3')).toBe('1500');
    expect(text('0.1000000000000000000000000000001')).toBe('0.1000000000000000000000000000001');
    expect(text('-0.000')).toBe('0');
  });

  it('refuses text that is not a decimal', () => {
    for (const bad of ['', ' ', '.', '-', '1e', 'e5', '0x10', '1_000', '1,5', 'NaN', 'Infinity', '1 2', 'abc']) expect(toDecimal(bad), bad).toBeUndefined();
  });

  it('takes a JSON number only when 15 significant digits give it back exactly', () => {
    expect(text(0.1)).toBe('0.1');
    expect(text(129.9)).toBe('129.9');
    expect(text(-5)).toBe('-5');
    expect(text(123456789012345)).toBe('123456789012345');
    expect(text(1.5e21)).toBe('1500000000000000000000');
    expect(text(150000000000000000)).toBe('150000000000000000');
    expect(toDecimal(1234567890123456)).toBeUndefined(); // 16 digits
    expect(toDecimal(0.1 + 0.2)).toBeUndefined(); // 0.30000000000000004
    expect(toDecimal(2 ** 60 + 1)).toBeUndefined();
    for (const bad of [NaN, Infinity, -Infinity]) expect(toDecimal(bad)).toBeUndefined();
  });

  it('refuses every other JSON value', () => {
    for (const bad of [null, undefined, true, false, {}, [], ['1'], { value: '1' }, 1n]) expect(toDecimal(bad)).toBeUndefined();
  });
});

const referenceText = (value: unknown): string | undefined => {
  const d = amountOf(value);
  return d && refText(d);
};

const digits = fc.stringMatching(/^\d{0,20}$/);
const decimalish = fc
  .tuple(fc.constantFrom('', '+', '-', ' ', 'x'), digits, fc.option(digits, { nil: undefined }), fc.option(fc.integer({ min: -30, max: 30 }), { nil: undefined }), fc.constantFrom('', ' ', 'e', '.'))
  .map(([sign, whole, fraction, exponent, tail]) => `${sign}${whole}${fraction === undefined ? '' : `.${fraction}`}${exponent === undefined ? '' : `e${exponent}`}${tail}`);
const jsonNumber = fc.oneof(
  fc.double({ noNaN: false }),
  fc.integer({ min: -1_000_000, max: 1_000_000 }).map((n) => n / 100),
  fc.tuple(fc.integer({ min: 1, max: 999_999 }), fc.integer({ min: -25, max: 25 })).map(([m, e]) => Number(`${m}e${e}`)),
);

describe('toDecimal properties (fast-check, seeded)', () => {
  it('agrees with the BigInt reference on any text', () => {
    fc.assert(
      fc.property(decimalish, (value) => {
        expect(text(value)).toBe(referenceText(value));
      }),
      { seed: 20261207, numRuns: 2_000 },
    );
  });

  it('agrees with the BigInt reference on any JSON number', () => {
    fc.assert(
      fc.property(jsonNumber, (value) => {
        expect(text(value)).toBe(referenceText(value));
        expect(isExactJsonNumber(value)).toBe(amountOf(value) !== undefined);
      }),
      { seed: 20261208, numRuns: 2_000 },
    );
  });
});
