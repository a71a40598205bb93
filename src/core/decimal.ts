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
