import { describe, expect, it } from 'vitest';
import { MONEY_TYPE } from '../../src/clickhouse/migrations.ts';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { dailyFigures } from '../../src/sinks/clickhouse/daily-figures.ts';
import { insertEvents } from '../../src/sinks/clickhouse/events-table.ts';
import { useTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { oracleMeasures } from '../support/oracle.ts';

const ch = useTestClickHouse();

describe('money in ClickHouse', () => {
  it('sums ten million 0.1 to exactly 1000000 in the column type the tables use', async () => {
    const rows = await (await ch.client.query({ query: `SELECT toString(sum(CAST('0.1' AS ${MONEY_TYPE}))) AS total FROM numbers(10000000)`, format: 'JSONEachRow' })).json<{ total: string }>();
    expect(rows[0]!.total).toBe('1000000');
  });

  it('keeps amounts exact from the event to the daily figure, whatever their scale', async () => {
    const report = testConfig({ reports: [{ name: 'r', types: ['sale'], measures: { total: { fn: 'sum', field: 'amount' }, low: { fn: 'min', field: 'amount' }, mean: { fn: 'avg', field: 'amount' } } }] }).reports[0]!;
    const at = Date.parse('2026-11-20T12:00:00Z');
    const amounts = ['0.1', '0.2', '0.30000000000000004', '-0.00000000000000000001', '99999999999999999999.99', 0.1, 12345];
    const events: TidemarkEvent[] = Array.from({ length: 14_000 }, (_, i) => ({ id: `e${i}`, type: 'sale', source: 's', key: null, occurredAt: at, receivedAt: at, data: { amount: amounts[i % amounts.length] }, seq: i + 1 }));
    await insertEvents(ch.client, ch.db, events);
    const [figure] = await dailyFigures(ch.client, ch.db, report, '2026-11-20');
    expect(figure!.measures).toEqual(oracleMeasures(report, events));
    expect(figure!.measures.total).toBe('200000000000000024691380.00000000000007998');
  });
});
