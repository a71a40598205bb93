import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { shiftedClock } from '../support/clock.ts';
import type { AmendedAlert } from '../../src/processors/daily/amended-alert.ts';
import { businessDay, closeAtMs } from '../../src/core/business-day.ts';
import { startProcessor, type Processor } from '../../src/processors/processor.ts';
import { dailyFigures } from '../../src/sinks/clickhouse/daily-figures.ts';
import { closeTestClickHouse, openTestClickHouse, type TestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { pipelineAcked, startTestIngest, type TestIngest } from '../harness/ingest.ts';
import { json, readAll, waitFor } from '../harness/streams.ts';
import { canonicalDecimalText } from '../support/reference-decimal.ts';

const report = {
  name: 'revenue',
  types: ['sale'],
  timeZone: 'Asia/Taipei',
  groupBy: ['source'],
  measures: { amount: { fn: 'sum', field: 'amount' }, orders: { fn: 'count' }, biggest: { fn: 'max', field: 'amount' } },
  close: { after: '3d' },
  coalesce: '300ms',
};

let ingest: TestIngest;
let ch: TestClickHouse;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let processor: Processor;
let clock: ReturnType<typeof shiftedClock>;
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });

type RevisionRow = { group_key: string; revision: number; status: string; reason: string; events: string; late_events: string; known_at: string; measures: Record<string, string> };

// each test gets its own nats-server, database, processor and clock, and builds the day it reads from scratch
beforeEach(async () => {
  clock = shiftedClock();
  ch = await openTestClickHouse();
  const config = testConfig({ reports: [report], clickhouse: { database: ch.db } });
  ingest = await startTestIngest(config);
  ({ nc, js, jsm } = ingest);
  processor = await startProcessor({ config, js, clickhouse: ch.client, logger, clock, revisorIntervalMs: 50 });
});

afterEach(async () => {
  await processor?.stop();
  await ingest?.dispose();
  await ch?.dispose();
});

afterAll(closeTestClickHouse);

const yesterdayNoonTaipei = (() => {
  const today = businessDay(Date.now(), 'Asia/Taipei');
  return Date.parse(`${today}T12:00:00+08:00`) - 86_400_000;
})();
const day = businessDay(yesterdayNoonTaipei, 'Asia/Taipei');

function sale(id: string, source: string, amount: string) {
  nc.publish(`ingest.${source}.sale`, JSON.stringify({ id, occurredAt: yesterdayNoonTaipei, data: { amount } }));
}

async function revisions(): Promise<RevisionRow[]> {
  const result = await ch.client.query({
    query: `SELECT group_key, revision, status, reason, events, late_events, toUnixTimestamp64Milli(known_at) AS known_at, measures FROM ${ch.db}.report_revisions FINAL WHERE day = {day:Date} ORDER BY group_key, revision`,
    query_params: { day },
    format: 'JSONEachRow',
  });
  return result.json<RevisionRow>();
}

const summary = (rows: RevisionRow[]) => rows.map((r) => `${JSON.parse(r.group_key)[0]} #${r.revision} ${r.status}/${r.reason} amount=${r.measures.amount} orders=${r.measures.orders} max=${r.measures.biggest} events=${r.events} late=${r.late_events}`);

async function waitForRevisions(count: number): Promise<RevisionRow[]> {
  return waitFor(async () => {
    const rows = await revisions();
    return rows.length >= count && rows;
  }, 60_000, `${count} revisions`);
}

/**
 * The positive signal that nothing more will happen without new input: the gateway and
 * the processor have acknowledged everything on their streams (acks come after what a
 * message caused is durable, dirty marks included) and no day is left dirty (a mark is
 * cleared only after its revision is written).
 */
async function settled(): Promise<void> {
  await waitFor(async () => (await pipelineAcked(jsm)) && (await processor.store.dirtyDays()).length === 0, 60_000, 'every sale processed and no day dirty');
}

/** Revision 1 of store-1 (three sales) and store-2 (two). */
const firstRevisions = async () => {
  sale('a1', 'store-1', '129.90');
  sale('a2', 'store-1', '0.10');
  sale('a3', 'store-1', '70.00');
  sale('b1', 'store-2', '5');
  sale('b2', 'store-2', '0.05');
  return waitForRevisions(2);
};

/** Two late sales and a duplicate of a1 for store-1: revision 2. */
const lateBurst = async () => {
  sale('a4', 'store-1', '0.01');
  sale('a5', 'store-1', '0.02');
  sale('a1', 'store-1', '129.90');
  const rows = await waitForRevisions(3);
  // a1 was sent after a5 on one connection, so once #2 (with a5) exists a1 is on its way: wait until it is processed too
  await settled();
  return rows;
};

/** The day's close by the clock: a final revision per group. */
const closeDay = async (count: number) => {
  clock.jumpTo(closeAtMs(day, testConfig({ reports: [report] }).reports[0]!) + 1);
  return waitForRevisions(count);
};

describe('daily view with revisions', () => {
  it('publishes revision 1 per group, exact to the cent', async () => {
    const rows = await firstRevisions();
    expect(summary(rows)).toEqual([
      'store-1 #1 preliminary/new amount=200 orders=3 max=129.9 events=3 late=0',
      'store-2 #1 preliminary/new amount=5.05 orders=2 max=5 events=2 late=0',
    ]);
  });

  it('turns a burst of late events into one revision n+1, and ignores duplicates', async () => {
    await firstRevisions();
    const rows = await lateBurst();
    expect(summary(await revisions())).toEqual([
      'store-1 #1 preliminary/new amount=200 orders=3 max=129.9 events=3 late=0',
      'store-1 #2 preliminary/late amount=200.03 orders=5 max=129.9 events=5 late=2',
      'store-2 #1 preliminary/new amount=5.05 orders=2 max=5 events=2 late=0',
    ]);
    expect(rows).toHaveLength(3);
  });

  it('finalises every group at close by the clock, with no event flowing', async () => {
    await firstRevisions();
    await lateBurst();
    await closeDay(5);
    expect(summary(await revisions()).filter((r) => r.includes('final'))).toEqual([
      'store-1 #3 final/close amount=200.03 orders=5 max=129.9 events=5 late=2',
      'store-2 #2 final/close amount=5.05 orders=2 max=5 events=2 late=0',
    ]);
  });

  it('amends a final figure when an event arrives after close, and raises an alert', async () => {
    await firstRevisions();
    await closeDay(4);
    sale('b3', 'store-2', '1000.5');
    const rows = await waitForRevisions(5);
    expect(summary(rows).at(-1)).toBe('store-2 #3 amended/amend amount=1005.55 orders=3 max=1000.5 events=3 late=1');
    const alerts = await waitFor(async () => {
      const all = (await readAll(js, jsm, 'ALERTS')).filter((m) => m.subject === 'alerts.amended.revenue');
      return all.length === 1 && all;
    });
    expect(json<AmendedAlert>(alerts[0]!)).toMatchObject({ kind: 'ReportAmended', day, revision: 3, before: { amount: '5.05' }, after: { amount: '1005.55' } });
  });

  it('agrees with the raw events as of each revision: new, late, final and amended', async () => {
    await firstRevisions();
    await lateBurst();
    await closeDay(5);
    sale('b3', 'store-2', '1000.5');
    await waitForRevisions(6);
    const config = testConfig({ reports: [report] });
    const rows = await revisions();
    expect(new Set(rows.map((r) => r.reason))).toEqual(new Set(['new', 'late', 'close', 'amend']));
    for (const row of rows) {
      const figures = await dailyFigures(ch.client, ch.db, config.reports[0]!, day, Number(row.known_at));
      const figure = figures.find((f) => f.groupKey === row.group_key)!;
      const expected = Object.fromEntries(Object.entries(row.measures).map(([k, v]) => [k, canonicalDecimalText(v)]));
      expect({ ...figure.measures }).toEqual(expected);
      expect(figure.events).toBe(Number(row.events));
    }
  });

  it('revises a day that keeps changing once per coalescing interval, not back to back', async () => {
    const store3 = async () => (await revisions()).filter((r) => r.group_key === JSON.stringify(['store-3']));
    for (let i = 0; i < 50; i++) {
      sale(`c${i}`, 'store-3', '1');
      await new Promise((r) => setTimeout(r, 40));
      // halfway, the first revision is awaited: the second half is then revised again however slow the machine (at least two revisions)
      if (i === 24) await waitFor(async () => (await store3()).length > 0, 60_000, 'store-3 revised');
    }
    const rows = await waitFor(async () => {
      const all = await store3();
      return all.at(-1)?.measures.orders === '50' && all;
    }, 60_000, 'store-3 revised with all 50 sales');
    const result = await ch.client.query({
      query: `SELECT toUnixTimestamp64Milli(computed_at) AS at FROM ${ch.db}.report_revisions FINAL WHERE day = {day:Date} AND group_key = {g:String} ORDER BY revision`,
      query_params: { day, g: JSON.stringify(['store-3']) },
      format: 'JSONEachRow',
    });
    const times = (await result.json<{ at: string }>()).map((r) => Number(r.at));
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    // launches are at least the 300 ms interval apart; a revision's time also holds its scan, which
    // varies under load, so single gaps may shrink, but on average they stay near the interval
    // (back to back, 50 marks would give dozens of revisions some 50 ms apart)
    expect(rows.length).toBeGreaterThan(1);
    expect((times.at(-1)! - times[0]!) / gaps.length).toBeGreaterThanOrEqual(200);
  }, 150_000);
});
