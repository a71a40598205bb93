import { Decimal as DecimalJs } from 'decimal.js';

/**
 * Money is summed with a private decimal.js constructor: 60 significant digits and
 * no exponent notation, so no binary floating point touches an amount.
 */
export const Decimal = DecimalJs.clone({ precision: 60, rounding: DecimalJs.ROUND_HALF_EVEN, toExpNeg: -40, toExpPos: 40 });
export type Decimal = InstanceType<typeof Decimal>;

const DECIMAL_TEXT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** Digits a double is guaranteed to carry exactly (DBL_DIG). */
const EXACT_DOUBLE_DIGITS = 15;

/**
 * Turns a JSON value into an exact decimal. A JSON number is accepted only when its
 * shortest text has at most 15 significant digits, because only then is that text
 * certainly what the sender wrote; anything longer must be sent as a string.
 */
export function toDecimal(value: unknown): Decimal | undefined {
  if (typeof value === 'string') return DECIMAL_TEXT.test(value.trim()) ? new Decimal(value.trim()) : undefined;
  if (typeof value === 'number') return isExactJsonNumber(value) ? new Decimal(String(value)) : undefined;
  return undefined;
}

export function isExactJsonNumber(value: number): boolean {
  if (!Number.isFinite(value)) return false;
  // zeros at either end only place the point: 150000000000000000 has 2 significant digits, as 1.5e21 does
  const digits = String(Math.abs(value)).replace(/e.*$/i, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '');
  return digits.length <= EXACT_DOUBLE_DIGITS;
}

export const isDecimalText = (text: string): boolean => DECIMAL_TEXT.test(text.trim());

/** Decimal places of an average: the exact sum divided by the count, rounded half-even. */
export const AVG_SCALE = 10;

/** Canonical decimal text: no exponent, no trailing zeros, "0" for zero ("129.9"). */
export function formatDecimal(value: Decimal): string {
  return value.isZero() ? '0' : value.toFixed();
}

/**
 * `sum / n` rounded half-even to `scale` places, computed on integers: dividing with
 * decimal.js would first round to 60 digits and then to `scale`, and that double
 * rounding can land on the wrong side of a half.
 */
export function divideHalfEven(sum: Decimal, n: number, scale: number): Decimal {
  const [whole, fraction = ''] = sum.toFixed().split('.');
  const numerator = BigInt(`${whole}${fraction}`) * 10n ** BigInt(scale);
  const denominator = BigInt(n) * 10n ** BigInt(fraction.length);
  let quotient = numerator / denominator;
  const remainder = numerator % denominator;
  const twice = 2n * (remainder < 0n ? -remainder : remainder);
  if (twice > denominator || (twice === denominator && quotient % 2n !== 0n)) quotient += numerator < 0n ? -1n : 1n;
  return new Decimal(`${quotient}e-${scale}`);
}

/** Two sets of figures in canonical decimal text are the same figures exactly when their texts are. */
export function sameMeasures(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && a[key] === b[key]);
}
