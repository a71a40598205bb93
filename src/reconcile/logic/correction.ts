import type { ReconciliationConfig } from '../../core/config.ts';
import { Decimal, formatDecimal, toDecimal } from '../../core/decimal.ts';
import type { Discrepancy, FieldValue, ReconRecord } from './types.ts';

export type HealPolicy = 'publish' | 'manual';

export const policyFor = (recon: Pick<ReconciliationConfig, 'heal'>, d: Discrepancy): HealPolicy => recon.heal[d.type];

/** A raw event for `ingest.<source>.<type>`, shaped as the gateway accepts it. */
export type CorrectionEvent = {
  subject: string;
  event: { id: string; source: string; type: string; key: string; occurredAt: number; data: Record<string, string> };
};

const SUBJECT_TOKEN = /^[^.*>\s]+$/;
const ZERO = new Decimal(0);
const value = (v: FieldValue | undefined): Decimal | undefined => (v === null || v === undefined ? undefined : toDecimal(v));

/**
 * The event that makes B agree with A: for each correction field, A − B (A's value
 * for MissingInB, minus B's for MissingInA). Its id derives from the discrepancy id,
 * so a retried heal is dropped by JetStream (Nats-Msg-Id) and collapses in the
 * `events` table, and reports count it once. Returns a reason instead when there is
 * nothing exact to publish (no correction configured, a non-decimal or missing value,
 * every delta zero, or no valid source): such a discrepancy goes to the manual queue.
 */
/** A key field or a compared field of a record. */
function fieldOf(keyFields: readonly string[], field: string, record: ReconRecord): FieldValue {
  const index = keyFields.indexOf(field);
  return index >= 0 ? (record.key[index] ?? null) : (record.fields[field] ?? null);
}

export function correctionFor(recon: Pick<ReconciliationConfig, 'name' | 'key' | 'correction'>, d: Discrepancy): CorrectionEvent | { reason: string } {
  const correction = recon.correction;
  if (correction === undefined) return { reason: 'no correction is configured' };
  const data: Record<string, string> = {};
  for (const field of correction.fields) {
    const a = d.a === null ? ZERO : value(d.a.fields[field]);
    const b = d.b === null ? ZERO : value(d.b.fields[field]);
    if (a === undefined || b === undefined) return { reason: `field ${field} has no exact decimal value on both sides` };
    const delta = a.minus(b);
    if (!delta.isZero()) data[field] = formatDecimal(delta);
  }
  if (Object.keys(data).length === 0) return { reason: 'no correction field differs' };
  const record = d.a ?? d.b!;
  const source = correction.sourceField === undefined ? correction.source : fieldOf(recon.key, correction.sourceField, record);
  if (source === null || !SUBJECT_TOKEN.test(source)) return { reason: `source "${String(source)}" is not one subject token` };
  const id = `recon-${recon.name}-${d.id}`;
  return {
    subject: `ingest.${source}.${correction.type}`,
    event: {
      id,
      source,
      type: correction.type,
      key: JSON.stringify(d.key),
      occurredAt: record.time,
      data: { ...data, reconciliation: recon.name, discrepancy: d.id, kind: d.type },
    },
  };
}
