import { isRowRefusal } from './refusal.ts';

export type RefusedRow<T> = { row: T; error: string };

/**
 * Inserts `rows`; when ClickHouse refuses their content (isRowRefusal) the batch is
 * halved, and halved again, until each refused row stands alone: everything else is
 * stored, and the refused rows come back with the engine's error. One bad row in n
 * costs about 2·log2(n) inserts. `insert` handles transient failures itself (it
 * retries); anything else it throws passes through.
 */
export async function insertIsolating<T>(rows: T[], insert: (rows: T[]) => Promise<void>): Promise<Array<RefusedRow<T>>> {
  if (rows.length === 0) return [];
  try {
    await insert(rows);
    return [];
  } catch (err) {
    if (!isRowRefusal(err)) throw err;
    if (rows.length === 1) return [{ row: rows[0]!, error: (err as Error).message }];
    const mid = Math.ceil(rows.length / 2);
    const first = await insertIsolating(rows.slice(0, mid), insert);
    return [...first, ...(await insertIsolating(rows.slice(mid), insert))];
  }
}
