import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/core/config.ts';
import { computeDay } from '../../src/processors/daily/day-compute.ts';
import { insertEvents, type ArrivedEvent } from '../../src/sinks/clickhouse/events-table.ts';
import { closeTestClickHouse, openTestClickHouse, type TestClickHouse } from '../harness/clickhouse.ts';
import { MEASURES, oracleFigures, type StoredRow } from '../support/daily-delta-oracle.ts';

const report = parseConfig({ reports: [{ name: 'r', types: ['sale'], timeZone: 'UTC', groupBy: ['source'], measures: MEASURES }] }).reports[0]!;
const DAY_MS = 86_400_000;
const EPOCH = 1_700_000_000_000;

let ch: TestClickHouse;
let runs = 0;
const modes = new Map<string, number>();

beforeAll(async () => {
  ch = await openTestClickHouse();
  // the oracle cannot know which copy a merge keeps: merges get their own test below
  await ch.client.command({ query: `SYSTEM STOP MERGES ${ch.db}.events` });
});

afterAll(async () => {
  await ch?.dispose();
  await closeTestClickHouse();
});

/** An identity and the content of its usual copy; a conflicting copy has a lower INGEST sequence and other content. */
const identity = fc.record({
  id: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'),
  source: fc.constantFrom('store-1', 'store-2', 'store-3'),
  minute: fc.integer({ min: -30, max: 24 * 60 + 30 }),
  amount: fc.option(fc.integer({ min: -10_000, max: 1_000_000 }).map((c) => (c / 100).toFixed(2)), { nil: undefined }),
  buyer: fc.option(fc.constantFrom('ann', 'bo', 'cy', 'di'), { nil: undefined }),
});

const step = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('batch' as const), picks: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('conflict' as const), of: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('redeliver' as const), of: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('revise' as const), lag: fc.nat({ max: 2 }), replay: fc.constantFrom(false, false, false, true) }) },
);

const asEvent = (row: StoredRow): ArrivedEvent => ({
  id: row.id,
  type: 'sale',
  source: row.source,
  key: null,
  occurredAt: row.occurredAt,
  receivedAt: row.receivedAt,
  data: { ...row.data },
  seq: row.ingestSeq,
  arrival: { epoch: row.epoch, seq: row.streamSeq },
});

describe('incremental daily state against a plain recomputation', () => {
  it('agrees after every revision, with duplicates, conflicting copies, rows in flight, late batches and replays interleaved', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(identity, { minLength: 3, maxLength: 10 }), fc.array(step, { minLength: 4, maxLength: 10 }), fc.array(identity, { maxLength: 4 }), async (pool, steps, aroundPipeline) => {
        const dayStart = Date.UTC(2026, 0, 1) + ++runs * 3 * DAY_MS;
        const day = new Date(dayStart).toISOString().slice(0, 10);
        const stored: StoredRow[] = [];
        const batches: StoredRow[][] = [];
        let streamSeq = 0;
        let hwm = 0;
        const copy = (i: number, conflicting: boolean, seq: number): StoredRow => {
          const p = pool[i % pool.length]!;
          const base = 1_000 + (i % pool.length);
          return {
            id: p.id,
            source: p.source,
            occurredAt: dayStart + p.minute * 60_000,
            receivedAt: dayStart + base - (conflicting ? 1 : 0),
            data: conflicting ? { amount: '7.77', buyer: 'zed' } : { ...(p.amount === undefined ? {} : { amount: p.amount }), ...(p.buyer === undefined ? {} : { buyer: p.buyer }) },
            ingestSeq: conflicting ? base - 500 : base,
            epoch: EPOCH,
            streamSeq: seq,
          };
        };
        // rows written around the pipeline (epoch 0) count from the first revision on
        const outside = aroundPipeline.map((p, i) => ({ id: `x${i}`, source: p.source, occurredAt: dayStart + p.minute * 60_000, receivedAt: dayStart, data: p.amount === undefined ? {} : { amount: p.amount }, ingestSeq: 5_000 + i, epoch: 0, streamSeq: 0 }));
        if (outside.length) {
          await insertEvents(ch.client, ch.db, outside.map(asEvent));
          stored.push(...outside);
        }
        for (const s of steps) {
          if (s.kind === 'batch' || s.kind === 'conflict') {
            const seq = ++streamSeq;
            const rows = s.kind === 'batch' ? s.picks.map((of) => copy(of, false, seq)) : [copy(s.of, true, seq)];
            await insertEvents(ch.client, ch.db, rows.map(asEvent));
            stored.push(...rows);
            batches.push(rows);
          } else if (s.kind === 'redeliver') {
            // the same message again (its ack was lost): same rows, same stream sequence
            const again = batches[s.of % Math.max(1, batches.length)];
            if (!again) continue;
            await insertEvents(ch.client, ch.db, again.map(asEvent));
            stored.push(...again);
          } else {
            // the ack floor trails the newest batches by `lag`: those are stored but in flight
            hwm = Math.max(hwm, streamSeq - s.lag);
            const mark = { epoch: EPOCH, hwm, delivered: streamSeq };
            const computed = await computeDay(ch.client, ch.db, report, day, mark, { replay: s.replay, wholeBelow: 0 });
            await computed.commit();
            const expected = oracleFigures(stored, mark, { start: dayStart, end: dayStart + DAY_MS });
            const actual = new Map(computed.figures.filter((f) => f.events > 0).map((f) => [f.groupKey, { events: f.events, knownAt: f.knownAt, measures: { ...f.measures } }]));
            modes.set(computed.mode, (modes.get(computed.mode) ?? 0) + 1);
            expect(actual).toEqual(expected);
          }
        }
      }),
      { numRuns: 15, seed: Number(process.env.FC_SEED ?? 2612), endOnFailure: true },
    );
    // the runs went through both paths, and the delta path took in rows more than once
    expect(modes.get('full')).toBeGreaterThan(0);
    expect(modes.get('delta')).toBeGreaterThan(5);
  }, 300_000);

  it('reads only the identities past the mark, not the day', async () => {
    const dayStart = Date.UTC(2025, 5, 1);
    const day = new Date(dayStart).toISOString().slice(0, 10);
    const row = (i: number, seq: number): ArrivedEvent => ({ id: `big-${i}`, type: 'sale', source: `store-${i % 4}`, key: null, occurredAt: dayStart + (i % 86_000) * 1_000, receivedAt: dayStart, data: { amount: '1.25' }, seq: i, arrival: { epoch: EPOCH, seq } });
    await insertEvents(ch.client, ch.db, Array.from({ length: 20_000 }, (_, i) => row(i, 1)));
    const first = await computeDay(ch.client, ch.db, report, day, { epoch: EPOCH, hwm: 1, delivered: 1 }, { replay: false, wholeBelow: 0 });
    await first.commit();
    expect(first).toMatchObject({ mode: 'full', rowsRead: 20_000 });
    // a late event and a duplicate of a counted one
    await insertEvents(ch.client, ch.db, [row(20_000, 2), row(7, 2)]);
    const next = await computeDay(ch.client, ch.db, report, day, { epoch: EPOCH, hwm: 2, delivered: 2 }, { replay: false, wholeBelow: 0 });
    expect(next).toMatchObject({ mode: 'delta', rowsRead: 1, changed: true });
    const total = next.figures.reduce((n, f) => n + f.events, 0);
    expect(total).toBe(20_001);
    expect(next.figures.find((f) => f.groupKey === JSON.stringify(['store-0']))!.measures.amount).toBe('6251.25');
  }, 60_000);
});

describe('copies folded by a merge of events', () => {
  it('are not counted again when the copy kept is the newer one', async () => {
    const dayStart = Date.UTC(2024, 2, 1);
    const day = new Date(dayStart).toISOString().slice(0, 10);
    await ch.client.command({ query: `SYSTEM START MERGES ${ch.db}.events` });
    const sale = (id: string, streamSeq: number, amount: string, seq: number): ArrivedEvent => ({ id, type: 'sale', source: 'store-1', key: null, occurredAt: dayStart + 1_000, receivedAt: dayStart + seq, data: { amount, buyer: 'ann' }, seq, arrival: { epoch: EPOCH, seq: streamSeq } });
    await insertEvents(ch.client, ch.db, [sale('m1', 1, '10', 100), sale('m2', 1, '5', 101)]);
    const first = await computeDay(ch.client, ch.db, report, day, { epoch: EPOCH, hwm: 1, delivered: 1 }, { replay: false, wholeBelow: 0 });
    await first.commit();
    // m1 again from the same message (same INGEST seq: ties, the newer copy is kept), and from an earlier one with other content
    await insertEvents(ch.client, ch.db, [sale('m1', 2, '10', 100)]);
    await insertEvents(ch.client, ch.db, [sale('m2', 3, '7', 50)]);
    await ch.client.command({ query: `OPTIMIZE TABLE ${ch.db}.events FINAL` });
    const kept = await (await ch.client.query({ query: `SELECT id, stream_seq FROM ${ch.db}.events WHERE occurred_at < fromUnixTimestamp64Milli({end:Int64}, 'UTC') AND occurred_at >= fromUnixTimestamp64Milli({start:Int64}, 'UTC') ORDER BY id`, query_params: { start: dayStart, end: dayStart + DAY_MS }, format: 'JSONEachRow' })).json();
    expect(kept).toEqual([{ id: 'm1', stream_seq: '2' }, { id: 'm2', stream_seq: '3' }]);
    const next = await computeDay(ch.client, ch.db, report, day, { epoch: EPOCH, hwm: 3, delivered: 3 }, { replay: false, wholeBelow: 0 });
    await next.commit();
    // the copy of m1 adds nothing; m2's earlier message replaced its content, so the day was recomputed
    expect(next.mode).toBe('full');
    expect(next.figures.map((f) => ({ ...f.measures, events: f.events }))).toEqual([{ amount: '17', orders: '2', priced: '2', smallest: '7', largest: '10', mean: '8.5', buyers: '1', events: 2 }]);
    await insertEvents(ch.client, ch.db, [sale('m1', 4, '10', 100)]);
    await ch.client.command({ query: `OPTIMIZE TABLE ${ch.db}.events FINAL` });
    const last = await computeDay(ch.client, ch.db, report, day, { epoch: EPOCH, hwm: 4, delivered: 4 }, { replay: false, wholeBelow: 0 });
    expect(last.mode).toBe('delta');
    expect(last.figures[0]!.events).toBe(2);
    await last.commit();
    // a new identity whose copy below the mark was folded into one still in flight (an earlier INGEST message: kept)
    await insertEvents(ch.client, ch.db, [sale('n1', 5, '3', 200)]);
    await insertEvents(ch.client, ch.db, [sale('n1', 6, '4', 150)]);
    await ch.client.command({ query: `OPTIMIZE TABLE ${ch.db}.events FINAL` });
    const folded = await (await ch.client.query({ query: `SELECT stream_seq FROM ${ch.db}.events WHERE id = 'n1'`, format: 'JSONEachRow' })).json();
    expect(folded).toEqual([{ stream_seq: '6' }]);
    const delta = await computeDay(ch.client, ch.db, report, day, { epoch: EPOCH, hwm: 5, delivered: 6 }, { replay: false, wholeBelow: 0 });
    const recomputed = await computeDay(ch.client, ch.db, report, day, { epoch: EPOCH, hwm: 5, delivered: 6 }, { replay: true, wholeBelow: 0 });
    expect(delta.mode).toBe('delta');
    expect(delta.figures[0]!.events).toBe(3);
    expect(delta.figures).toEqual(recomputed.figures);
  }, 60_000);
});
