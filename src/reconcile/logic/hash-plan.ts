import { Decimal } from '../../core/decimal.ts';
import type { FieldSpec } from './types.ts';

/**
 * How a compared field enters the row hash, chosen from its ClickHouse types on the
 * two systems. The one rule every choice keeps: two values that hash alike must agree
 * under valuesAgree. (The converse is only about speed: values that agree but hash
 * differently make their segment a candidate, and the exact diff clears them.)
 *
 * - `native`: the same type on both sides — the value itself; equal values have equal text.
 * - `decimal`: Decimal/integer types of different scales — cast to one Decimal256 scale, exact.
 * - `text`: anything else — `toString`, and equal text is an equal value.
 * - `absolute`: tolerant fields hash a bucket floor(x / w), w = tolerance / 2. Two values in
 *   one bucket differ by less than w, plus Float64 rounding, which is below w/8 because
 *   only |x| < LIMIT·w is bucketed: well within the tolerance. Other values (larger,
 *   NaN, not numeric) hash their text and so fall back to exact comparison.
 * - `percentage`: the bucket is floor(ln|x| / w) with w = ln(1 + p/100) / 2, plus the sign;
 *   one bucket means |b/a| within e^±w·(1+ε), inside 1 ± p/100. Zero, tiny and huge
 *   values hash their text. Below MIN_RELATIVE the float bucket is not trusted and the
 *   field is hashed exactly.
 *
 * The bucket widths are computed in binary floating point, but only to group values for
 * the checksum: every verdict comes from valuesAgree in exact decimals.
 */
export type FieldHash =
  | { field: string; kind: 'native' | 'text' }
  | { field: string; kind: 'decimal'; scale: number }
  | { field: string; kind: 'absolute'; width: number; limit: number }
  | { field: string; kind: 'percentage'; width: number };

export type ColumnType = { base: string; nullable: boolean };

/** Values bucketed by `absolute` stay below 2^48 widths, where a double still resolves 1/32 of a width. */
const BUCKET_LIMIT = 2 ** 48;
const MIN_RELATIVE = 1e-9;

/** `Nullable(LowCardinality(String))` → String, nullable. */
export function columnType(type: string): ColumnType {
  let base = type.trim();
  let nullable = false;
  for (;;) {
    const m = /^(Nullable|LowCardinality)\((.*)\)$/.exec(base);
    if (!m) break;
    if (m[1] === 'Nullable') nullable = true;
    base = m[2]!.trim();
  }
  return { base, nullable };
}

const DECIMAL = /^Decimal(?:32|64|128|256)?\((?:\d+,\s*)?(\d+)\)$/;
const INTEGER = /^U?Int(8|16|32|64|128|256)$/;

/** Scale of an exact numeric type: a Decimal's, 0 for integers; undefined otherwise. */
function exactScale(base: string): number | undefined {
  const decimal = DECIMAL.exec(base);
  if (decimal) return Number(decimal[1]);
  return INTEGER.test(base) ? 0 : undefined;
}

export const isNumericType = (base: string): boolean => exactScale(base) !== undefined || /^(Float32|Float64|BFloat16)$/.test(base);

function exactHash(field: string, a: ColumnType, b: ColumnType): FieldHash {
  if (a.base === b.base) return { field, kind: 'native' };
  const sa = exactScale(a.base);
  const sb = exactScale(b.base);
  if (sa !== undefined && sb !== undefined) return { field, kind: 'decimal', scale: Math.max(sa, sb) };
  return { field, kind: 'text' };
}

export function fieldHash(field: string, spec: FieldSpec, a: ColumnType, b: ColumnType): FieldHash {
  if (spec.compare === 'exact' || new Decimal(spec.tolerance).isZero()) return exactHash(field, a, b);
  const tolerance = Number(spec.tolerance);
  if (spec.compare === 'absolute') return { field, kind: 'absolute', width: tolerance / 2, limit: BUCKET_LIMIT * (tolerance / 2) };
  const relative = tolerance / 100;
  if (!(relative >= MIN_RELATIVE)) return exactHash(field, a, b);
  return { field, kind: 'percentage', width: Math.log1p(relative) / 2 };
}
