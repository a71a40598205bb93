import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { MEASURE_FNS, MEASURES } from '../../src/core/measures.ts';
import { dailyFigures } from '../../src/sinks/clickhouse/daily-figures.ts';
import { insertEvents } from '../../src/sinks/clickhouse/events-table.ts';
import { useTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { oracleMeasures } from '../support/oracle.ts';

/**
 * Each function's daily SQL (the registry's, run by chDB over the real `events` table)
 * against the test oracle, on feeds mixing decimal text, JSON numbers, nulls, missing
 * fields, junk and objects. The realtime SQL is held to the oracle in realtime.test.ts.
 */

const ch = useTestClickHouse();

const measures = {
  ...Object.fromEntries(MEASURE_FNS.map((fn) => [fn, { fn, field: 'x' }])),
  ...Object.fromEntries(MEASURE_FNS.filter((fn) => !MEASURES[fn].needsField).map((fn) => [`${fn}_all`, { fn }])),
};
const report = testConfig({ reports: [{ name: 'r', types: ['sale'], groupBy: ['source'], measures }] }).reports[0]!;

const value = fc.oneof(
  fc.constantFrom('0.1', '-2.50', '1e2', '99999999999999999999.99', '0.00000000000000000001', 'x', '', null, true, 7, 0.25, -3),
  fc.constant(undefined),
  fc.dictionary(fc.constantFrom('a', 'b'), fc.integer({ min: 0, max: 1 })),
);

describe('measure registry in SQL', () => {
  it('each function over the events table gives the oracle\'s figure', async () => {
    let day = Date.parse('2030-01-01T12:00:00Z');
    let seq = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom('a', 'b'), value), { minLength: 1, maxLength: 25 }), async (feed) => {
        day += 86_400_000;
        const events: TidemarkEvent[] = feed.map(([source, x]) => {
          seq += 1;
          return { id: `e${seq}`, type: 'sale', source, key: null, occurredAt: day, receivedAt: day, data: x === undefined ? {} : { x }, seq };
        });
        await insertEvents(ch.client, ch.db, events);
        const figures = await dailyFigures(ch.client, ch.db, report, new Date(day).toISOString().slice(0, 10));
        const bySource = new Map(figures.map((f) => [JSON.parse(f.groupKey)[0] as string, f.measures]));
        for (const source of new Set(events.map((e) => e.source))) {
          expect(bySource.get(source)).toEqual(oracleMeasures(report, events.filter((e) => e.source === source)));
        }
      }),
      { numRuns: 15 },
    );
  });
});
