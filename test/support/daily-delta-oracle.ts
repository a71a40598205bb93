/**
 * A plain reference for the incremental daily state, sharing no code with src/: every
 * figure is recomputed from the full list of stored rows — the rows a revision may take
 * in (of another stream epoch, or at most its high-water mark), one per identity
 * (type, occurredAt, source, id), the copy with the lowest INGEST sequence — with
 * decimal.js directly. Report: UTC days, grouped by source, measures as in MEASURES.
 */
import { Decimal } from 'decimal.js';

export type StoredRow = {
  id: string;
  source: string;
  occurredAt: number;
  receivedAt: number;
  /** amount: decimal text or absent; buyer: a string or absent */
  data: { amount?: string; buyer?: string };
  ingestSeq: number;
  epoch: number;
  streamSeq: number;
};

export const MEASURES = {
  amount: { fn: 'sum', field: 'amount' },
  orders: { fn: 'count' },
  priced: { fn: 'count', field: 'amount' },
  smallest: { fn: 'min', field: 'amount' },
  largest: { fn: 'max', field: 'amount' },
  mean: { fn: 'avg', field: 'amount' },
  buyers: { fn: 'uniq', field: 'buyer' },
} as const;

export type Figure = { events: number; knownAt: number; measures: Record<string, string> };

const Wide = Decimal.clone({ precision: 300 });
const text = (d: Decimal.Value): string => {
  const value = new Wide(d);
  return value.isZero() ? '0' : value.toFixed();
};

/** Per group key (JSON array of the source): the figure over what a revision with this mark may include. */
export function oracleFigures(rows: readonly StoredRow[], mark: { epoch: number; hwm: number }, day: { start: number; end: number }): Map<string, Figure> {
  const winners = new Map<string, StoredRow>();
  for (const row of rows) {
    if (row.occurredAt < day.start || row.occurredAt >= day.end) continue;
    if (row.epoch === mark.epoch && row.streamSeq > mark.hwm) continue;
    const identity = JSON.stringify([row.occurredAt, row.source, row.id]);
    const held = winners.get(identity);
    if (!held || row.ingestSeq < held.ingestSeq) winners.set(identity, row);
  }
  const groups = new Map<string, StoredRow[]>();
  for (const row of winners.values()) {
    const key = JSON.stringify([row.source]);
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  const figures = new Map<string, Figure>();
  for (const [key, members] of groups) {
    const amounts = members.flatMap((m) => (m.data.amount === undefined ? [] : [new Wide(m.data.amount)]));
    const sum = amounts.reduce((a, b) => a.plus(b), new Wide(0));
    const measures: Record<string, string> = {
      amount: text(sum),
      orders: String(members.length),
      priced: String(amounts.length),
      buyers: String(new Set(members.flatMap((m) => (m.data.buyer === undefined ? [] : [m.data.buyer]))).size),
    };
    if (amounts.length) {
      measures.smallest = text(Wide.min(...amounts));
      measures.largest = text(Wide.max(...amounts));
      measures.mean = text(sum.div(amounts.length).toDecimalPlaces(10, Decimal.ROUND_HALF_EVEN));
    }
    figures.set(key, { events: members.length, knownAt: Math.max(...members.map((m) => m.receivedAt)), measures });
  }
  return figures;
}
