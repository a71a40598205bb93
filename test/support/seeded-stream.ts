import fc from 'fast-check';
import type { ClickHouseClient } from '@clickhouse/client';
import { expect } from 'vitest';
import type { ReportConfig } from '../../src/core/config.ts';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { dailyFigures } from '../../src/sinks/clickhouse/daily-figures.ts';
import { publishedRevisions } from '../../src/query/revisions.ts';
import { dayGroupKey, oracleDaily, oracleDay } from './oracle.ts';

const DAY = 86_400_000;

export type RawMessage = { id: string; subject: string; body: string };

/**
 * A seeded stream of sales in Asia/Taipei: out of order over four business days, two
 * of them already past a 3-day close, three stores, amounts with cents (some
 * negative), re-sent duplicates at the end.
 */
export function seededSales(now: number, count: number, resent: number, seed = 42): { unique: RawMessage[]; all: RawMessage[] } {
  const today = Date.parse(`${oracleDay(now, 'Asia/Taipei')}T00:00:00+08:00`);
  const dayStarts = [1, 2, 6, 9].map((n) => today - n * DAY);
  const event = fc.record({
    source: fc.constantFrom('store-1', 'store-2', 'store-3'),
    day: fc.constantFrom(...dayStarts),
    offset: fc.integer({ min: 0, max: DAY - 1 }),
    cents: fc.integer({ min: -5_000, max: 500_000 }),
    buyer: fc.constantFrom('ann', 'bo', 'cy', 'di', 'ed', 'fay'),
  });
  const drawn = fc.sample(fc.array(event, { minLength: count, maxLength: count }), { seed, numRuns: 1 })[0]!;
  const unique = drawn.map((e, i) => ({
    id: `e-${i}`,
    subject: `ingest.${e.source}.sale`,
    body: JSON.stringify({ id: `e-${i}`, occurredAt: e.day + e.offset, data: { amount: (e.cents / 100).toFixed(2), buyer: e.buyer } }),
  }));
  const again = fc.sample(fc.subarray(unique, { minLength: resent, maxLength: resent }), { seed: seed + 1, numRuns: 1 })[0]!;
  return { unique, all: [...unique, ...again] };
}

export const salesReport = {
  name: 'sales',
  types: ['sale'],
  timeZone: 'Asia/Taipei',
  groupBy: ['source'],
  measures: {
    amount: { fn: 'sum', field: 'amount' },
    orders: { fn: 'count' },
    smallest: { fn: 'min', field: 'amount' },
    largest: { fn: 'max', field: 'amount' },
    mean: { fn: 'avg', field: 'amount' },
    buyers: { fn: 'uniq', field: 'buyer' },
  },
  close: { after: '3d' },
  coalesce: '200ms',
};

function asEvents(messages: RawMessage[]): TidemarkEvent[] {
  return messages.map((m) => {
    const body = JSON.parse(m.body) as { id: string; occurredAt: number; data: Record<string, unknown> };
    return { id: body.id, type: 'sale', source: m.subject.split('.')[1]!, key: null, occurredAt: body.occurredAt, receivedAt: 0, data: body.data, seq: 0 };
  });
}

/**
 * What the pipeline stored must match the plain reference computation: one row per
 * event, and per (day, group) gap-free revisions with the expected status, whose
 * latest figure is the oracle's and agrees with the raw events as of its known_at.
 */
export async function expectOracleFigures(client: ClickHouseClient, db: string, report: ReportConfig, unique: RawMessage[]): Promise<void> {
  const oracle = oracleDaily(report, asEvents(unique));
  const counted = await (await client.query({ query: `SELECT count() AS n, uniqExact(source, id) AS ids FROM ${db}.events FINAL`, format: 'JSONEachRow' })).json<{ n: string; ids: string }>();
  expect(counted[0]).toEqual({ n: String(unique.length), ids: String(unique.length) });
  const days = [...new Set([...oracle.values()].map((f) => f.day))];
  const closedDays = new Set(days.filter((d) => Date.parse(`${d}T00:00:00+08:00`) + 4 * DAY <= Date.now()));
  expect(closedDays.size).toBe(2);
  let groups = 0;
  for (const day of days) {
    const history = await publishedRevisions(client, db, report.name, day, { history: true });
    const byGroup = new Map<string, typeof history>();
    for (const r of history) byGroup.set(r.groupKey, [...(byGroup.get(r.groupKey) ?? []), r]);
    for (const [group, revisions] of byGroup) {
      groups++;
      const expected = oracle.get(dayGroupKey(day, group))!;
      const latest = revisions.at(-1)!;
      expect(revisions.map((r) => r.revision)).toEqual(revisions.map((_, i) => i + 1));
      expect(new Set(revisions.map((r) => r.status))).toEqual(new Set([closedDays.has(day) ? 'amended' : 'preliminary']));
      expect(latest.measures).toEqual(expected.measures);
      expect(latest.events).toBe(expected.events);
      const asOf = await dailyFigures(client, db, report, day, latest.knownAt);
      expect(asOf.find((f) => f.groupKey === group)?.measures).toEqual(latest.measures);
    }
  }
  expect(groups).toBe(oracle.size);
}
