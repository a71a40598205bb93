import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconSummary, sagaSummary } from '../../src/query/summaries.ts';
import { closeTestClickHouse, openTestClickHouse, type TestClickHouse } from '../harness/clickhouse.ts';

let ch: TestClickHouse;
const T = Date.parse('2026-11-20T10:00:00Z');

const saga = (id: string, status: string, version: number, extra: Record<string, unknown> = {}) => ({
  saga_id: id, name: 'order', status, trigger_id: `t-${id}`, input: '{}', current_step: 'payment', failed_step: '', failure: '', parks: 0,
  started_at: T, updated_at: T + version, ended_at: null, duration_ms: null, compensation_started_at: null, version, ...extra,
});

const finding = (id: string, type: string, status: string, rank: number) => ({
  id, name: 'ledger-vs-bank', period: '2026-11-20', type, side: '', key: id, count: 1, diffs: '[]', record_a: '', record_b: '',
  status, action: 'none', mode: 'batch', run_id: 'r1', detected_at: T, updated_at: T + rank, note: '', rank,
});

beforeAll(async () => {
  ch = await openTestClickHouse();
  const insert = (table: string, values: object[]) => ch.client.insert({ table: `${ch.db}.${table}`, values, format: 'JSONEachRow' });
  await insert('sagas', [
    saga('s1', 'running', 1), saga('s1', 'completed', 2),
    saga('s2', 'running', 1), saga('s2', 'parked', 3, { failed_step: 'refund', failure: 'bank down' }),
    saga('s3', 'running', 1),
  ]);
  await insert('recon_discrepancies', [
    finding('d1', 'Mismatch', 'open', 1),
    finding('d2', 'MissingInB', 'open', 1), finding('d2', 'MissingInB', 'healed', 2),
    finding('d3', 'Mismatch', 'open', 1),
  ]);
  await insert('recon_runs', [{
    run_id: 'r1', name: 'ledger-vs-bank', period: '2026-11-20', mode: 'batch', status: 'succeeded', started_at: T, finished_at: T + 900, duration_ms: 900,
    rows_a: 10, rows_b: 9, levels: 1, segments_compared: 4, segments_differing: 2, rows_fetched: 5, missing_in_a: 0, missing_in_b: 1, mismatches: 2,
    duplicates: 0, new_discrepancies: 3, healed: 1, queued: 2, alerted: 0, error: '', version: 2,
  }]);
});

afterAll(async () => {
  await ch?.dispose();
  await closeTestClickHouse();
});

describe('the summaries the page shows', () => {
  it('counts sagas by their latest status and lists the parked ones', async () => {
    expect(await sagaSummary(ch.client, ch.db)).toEqual({
      byStatus: { completed: 1, parked: 1, running: 1 },
      parked: [{ sagaId: 's2', name: 'order', step: 'refund', failure: 'bank down', updatedAt: T + 3 }],
    });
  });

  it('counts discrepancies by their latest status, the open ones per type, and the last runs', async () => {
    expect(await reconSummary(ch.client, ch.db)).toEqual({
      byStatus: { healed: 1, open: 2 },
      open: [{ name: 'ledger-vs-bank', type: 'Mismatch', count: 2 }],
      lastRuns: [{ name: 'ledger-vs-bank', period: '2026-11-20', mode: 'batch', status: 'succeeded', finishedAt: T + 900, newDiscrepancies: 3 }],
    });
  });
});
