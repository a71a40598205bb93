import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { makeReport } from './fixtures.ts';
import { oracleDay } from './oracle.ts';

/** The last schema version before events were keyed by (source, id). */
export const BEFORE = 7;
export const report = makeReport({
  name: 'mix',
  types: ['sale', 'refund'],
  timeZone: 'Europe/Paris',
  groupBy: ['source'],
  measures: { n: { fn: 'count' }, amount: { fn: 'sum', field: 'amount' }, top: { fn: 'max', field: 'amount' }, mean: { fn: 'avg', field: 'amount' }, customers: { fn: 'uniq', field: 'customer' } },
});
export const START = Date.parse('2026-09-28T10:00:00Z');

/**
 * What a database of the previous version holds: events of three sources over two
 * months (several partitions), written in several inserts (several parts) by the
 * current writer, with re-sent copies (same key, later seq), ids the gateway made
 * (`INGEST-<seq>`) and one id that two sources used at different times.
 */
export function oldEvents(): TidemarkEvent[][] {
  const batches: TidemarkEvent[][] = [];
  let seq = 0;
  for (let b = 0; b < 4; b++) {
    const batch: TidemarkEvent[] = [];
    for (let i = 0; i < 60; i++) {
      seq++;
      const source = ['till-a', 'till-b', 'web'][i % 3]!;
      const occurredAt = START + (b * 60 + i) * 3_600_000;
      const id = i % 7 === 0 ? `INGEST-${seq}` : `${source}-${b}-${i}`;
      batch.push({ id, type: i % 5 === 0 ? 'refund' : 'sale', source, key: null, occurredAt, receivedAt: occurredAt + 1_000, data: { amount: `${i}.${b}5`, customer: `c${i % 11}` }, seq });
    }
    // a re-sent copy of an event of the previous batch: the same row but for its later seq
    if (b > 0) batch.push({ ...batches[b - 1]![3]!, seq: ++seq });
    batches.push(batch);
  }
  // the old key (type, occurred_at, id) kept one id of two sources apart when their times differed
  batches[3]!.push({ ...batches[0]![1]!, id: batches[0]![2]!.id, occurredAt: batches[0]![1]!.occurredAt + 1, seq: ++seq });
  return batches;
}

export const days = (batches: TidemarkEvent[][]): string[] => [...new Set(batches.flat().map((e) => oracleDay(e.occurredAt, report.timeZone)))].sort();

