import type { ReconFieldConfig, ReconciliationConfig } from '../../core/config.ts';

export type Side = 'A' | 'B';
export type DiscrepancyType = 'MissingInA' | 'MissingInB' | 'Mismatch' | 'Duplicate';

/** A field value as text, exactly as the system holds it (decimals stay text); null when absent. */
export type FieldValue = string | null;

/** One record of one system, already reduced to the logical fields of its reconciliation. */
export type ReconRecord = {
  key: string[];
  fields: Record<string, FieldValue>;
  /** business time, epoch milliseconds: decides the period */
  time: number;
};

export type FieldDiff = { field: string; a: FieldValue; b: FieldValue };

export type Discrepancy = {
  /** deterministic: the same finding always has the same id, whichever mode or run finds it */
  id: string;
  name: string;
  /** the business day (YYYY-MM-DD) the finding belongs to */
  period: string;
  type: DiscrepancyType;
  /** the side holding the duplicates; null for the other types */
  side: Side | null;
  key: string[];
  /** copies on `side` (Duplicate only) */
  count: number;
  diffs: FieldDiff[];
  /** the (first) record of each side, as evidence and as input to a correction */
  a: ReconRecord | null;
  b: ReconRecord | null;
};

/** What the pure logic needs of a reconciliation definition. */
export type ReconSpec = Pick<ReconciliationConfig, 'name' | 'key' | 'fields' | 'lag' | 'timeZone'>;
export type FieldSpec = ReconFieldConfig;
