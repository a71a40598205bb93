import { Decimal, toDecimal } from '../../core/decimal.ts';
import { canonicalJson } from '../../core/canonical.ts';
import type { FieldDiff, FieldSpec, FieldValue, ReconRecord, ReconSpec } from './types.ts';

const HUNDRED = new Decimal(100);

/** The value as an exact decimal when its text is one ("1.50", "-3", "1e-7"); otherwise undefined. */
const asDecimal = (value: string): Decimal | undefined => {
  const d = toDecimal(value);
  return d !== undefined && d.isFinite() ? d : undefined;
};

/**
 * Whether two values of one field agree, in exact decimal arithmetic:
 * - null agrees only with null;
 * - `exact`: equal text, or two decimal texts of equal value ("1.50" = "1.5");
 * - `absolute`: |a - b| <= tolerance;
 * - `percentage`: |a - b| * 100 <= tolerance * |a| — A is the reference, so a = 0 needs b = 0.
 * A non-decimal value in a tolerant field agrees only with the same text.
 */
export function valuesAgree(spec: FieldSpec, a: FieldValue, b: FieldValue): boolean {
  if (a === null || b === null) return a === b;
  if (a === b) return true;
  const da = asDecimal(a);
  const db = asDecimal(b);
  if (da === undefined || db === undefined) return false;
  const gap = da.minus(db).abs();
  switch (spec.compare) {
    case 'exact':
      return gap.isZero();
    case 'absolute':
      return gap.lte(spec.tolerance);
    case 'percentage':
      return gap.times(HUNDRED).lte(da.abs().times(spec.tolerance));
  }
}

/** The compared fields on which two records disagree, in the definition's order. */
export function fieldDiffs(spec: Pick<ReconSpec, 'fields'>, a: ReconRecord, b: ReconRecord): FieldDiff[] {
  const diffs: FieldDiff[] = [];
  for (const [field, fieldSpec] of Object.entries(spec.fields)) {
    const va = a.fields[field] ?? null;
    const vb = b.fields[field] ?? null;
    if (!valuesAgree(fieldSpec, va, vb)) diffs.push({ field, a: va, b: vb });
  }
  return diffs;
}

/** A JSON value as field text: strings as they are, numbers in their shortest form, objects as canonical JSON (key order never matters). */
export function fieldText(value: unknown): FieldValue {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return canonicalJson(value);
}
