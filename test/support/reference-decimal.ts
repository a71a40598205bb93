/**
 * A reference decimal for the test oracles, written on BigInt so it shares nothing with
 * src/core/decimal.ts (decimal.js): a value is an integer of units times 10^-scale.
 * Only what the oracles need: parse, add, compare, divide half-even, canonical text.
 */
export interface RefDecimal {
  readonly units: bigint;
  readonly scale: number;
}

const ZERO: RefDecimal = { units: 0n, scale: 0 };
/** The decimal text the contract accepts as an amount (SPEC: optional sign, digits, optional point, optional exponent). */
const AMOUNT_TEXT = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;
/** Far beyond any test amount; stops a pathological exponent from building a giant BigInt. */
const MAX_EXPONENT = 1_000;

const pow10 = (n: number): bigint => 10n ** BigInt(n);

/** Decimal text as a RefDecimal, or undefined when it is not decimal text. */
export function parseRef(text: string): RefDecimal | undefined {
  const match = AMOUNT_TEXT.exec(text.trim());
  if (!match) return undefined;
  const [, sign, whole = '', fraction = '', exponent = '0'] = match;
  if (whole === '' && fraction === '') return undefined;
  const exp = Number(exponent);
  if (Math.abs(exp) > MAX_EXPONENT) throw new RangeError(`reference decimal: exponent ${exp} out of test range`);
  const digits = BigInt(`${whole}${fraction}` || '0');
  const units = sign === '-' ? -digits : digits;
  const scale = fraction.length - exp;
  return scale >= 0 ? { units, scale } : { units: units * pow10(-scale), scale: 0 };
}

/**
 * A JSON value as an exact amount, following the contract: a string of decimal text,
 * or a JSON number only when 15 significant digits (DBL_DIG) give it back exactly,
 * since only then is its text certainly what the sender wrote.
 */
export function amountOf(value: unknown): RefDecimal | undefined {
  if (typeof value === 'string') return parseRef(value);
  if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
  if (Number(value.toPrecision(15)) !== value) return undefined;
  return parseRef(String(value));
}

function aligned(a: RefDecimal, b: RefDecimal): [bigint, bigint, number] {
  const scale = Math.max(a.scale, b.scale);
  return [a.units * pow10(scale - a.scale), b.units * pow10(scale - b.scale), scale];
}

export function addRef(a: RefDecimal, b: RefDecimal): RefDecimal {
  const [x, y, scale] = aligned(a, b);
  return { units: x + y, scale };
}

export const sumRef = (values: readonly RefDecimal[]): RefDecimal => values.reduce(addRef, ZERO);

export function compareRef(a: RefDecimal, b: RefDecimal): number {
  const [x, y] = aligned(a, b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** `value / n` rounded half-even to `places` decimal places. */
export function divideRef(value: RefDecimal, n: number, places: number): RefDecimal {
  // value / n at `places` = units * 10^places / (n * 10^scale)
  const numerator = value.units * pow10(places);
  const denominator = BigInt(n) * pow10(value.scale);
  const negative = numerator < 0n;
  const abs = negative ? -numerator : numerator;
  let quotient = abs / denominator;
  const twiceRemainder = (abs % denominator) * 2n;
  if (twiceRemainder > denominator || (twiceRemainder === denominator && quotient % 2n === 1n)) quotient += 1n;
  return { units: negative ? -quotient : quotient, scale: places };
}

/** Canonical text: fixed notation, no trailing fractional zeros, no exponent, "0" for any zero. */
export function refText(value: RefDecimal): string {
  if (value.units === 0n) return '0';
  const negative = value.units < 0n;
  const digits = (negative ? -value.units : value.units).toString().padStart(value.scale + 1, '0');
  const whole = digits.slice(0, digits.length - value.scale);
  const fraction = digits.slice(digits.length - value.scale).replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** Canonical text of any decimal text (the form figures are stored and compared in). */
export function canonicalDecimalText(text: string): string {
  const value = parseRef(text);
  if (!value) throw new Error(`not decimal text: ${JSON.stringify(text)}`);
  return refText(value);
}
