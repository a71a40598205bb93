import { createHash } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import { dlqRecord, publishToDlq } from '../../nats/dlq.ts';
import { insertIsolating } from './isolating-insert.ts';

/**
 * For the writers whose rows are derived (revisions, realtime windows, reconciliation
 * findings): inserts with isolation (isolating-insert.ts), and files each row
 * ClickHouse refuses in the DLQ as `REFUSED_BY_SINK` with the engine's error and the
 * row as JSON, on `dlq.sink.<table>`. The message id is a hash of table and row, so a
 * row refused again after a restart is filed once. The rest is stored; nothing is
 * retried for ever. Resolves to how many rows were filed.
 */
export async function insertOrFile<T>(js: JetStreamClient, table: string, rows: T[], insert: (rows: T[]) => Promise<void>, now: number): Promise<number> {
  const refused = await insertIsolating(rows, insert);
  for (const { row, error } of refused) {
    const raw = new TextEncoder().encode(JSON.stringify(row));
    const record = dlqRecord({ code: 'REFUSED_BY_SINK', reason: `ClickHouse refused a row of ${table}: ${error}` }, raw, `sink.${table}`, {}, { table }, now);
    await publishToDlq(js, record, `refused-${table}-${createHash('sha256').update(raw).digest('hex').slice(0, 32)}`);
  }
  return refused.length;
}
