import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/core/config.ts';
import { computeDay } from '../../src/processors/daily/day-compute.ts';
import { deltaScanRows } from '../../src/sinks/clickhouse/day-state-sql.ts';
import { insertEvents, type ArrivedEvent } from '../../src/sinks/clickhouse/events-table.ts';
import { useTestClickHouse } from '../harness/clickhouse.ts';

const report = parseConfig({ reports: [{ name: 'r', types: ['sale'], timeZone: 'UTC', groupBy: ['source'], measures: { total: { fn: 'sum', field: 'amount' } } }] }).reports[0]!;
const EPOCH = 1_700_000_000_000;
const PER_ARRIVAL = 10_000;
const ARRIVALS = 4;

const ch = useTestClickHouse();

/** `ARRIVALS` inserts of one day (one EVENTS message each, sequences 1…), each event at `at(arrival, i)`. */
async function fillDay(day: string, at: (arrival: number, i: number) => number): Promise<void> {
  for (let arrival = 1; arrival <= ARRIVALS; arrival++) {
    const events: ArrivedEvent[] = Array.from({ length: PER_ARRIVAL }, (_, i) => ({
      id: `${day}-${arrival}-${i}`,
      type: 'sale',
      source: `store-${i % 7}`,
      key: null,
      occurredAt: at(arrival, i),
      receivedAt: at(arrival, i) + 1_000,
      data: { amount: '1.25' },
      seq: arrival * PER_ARRIVAL + i,
      arrival: { epoch: EPOCH, seq: arrival },
    }));
    await insertEvents(ch.client, ch.db, events);
  }
}

/** Whole granules (8,192 rows) are estimated: up to one more on each side of the rows asked for, from neighbouring days. */
const GRANULE = 8_192;
const about = (rows: number) => ({ atLeast: rows, below: rows + 2 * GRANULE });

const merge = () => ch.client.command({ query: `OPTIMIZE TABLE ${ch.db}.events FINAL` });
const lastArrival = (day: string) => deltaScanRows(ch.client, ch.db, report, day, { epoch: EPOCH, hwm: ARRIVALS, base: ARRIVALS - 1 });

describe('what a delta revision goes through', () => {
  it('is the last arrival alone while it is a part of its own, the whole day once a merge spread it over every granule', async () => {
    const day = '2026-03-02';
    const start = Date.UTC(2026, 2, 2, 12);
    // every arrival's events within the same ten minutes, as the bench sends them
    await fillDay(day, (_, i) => start + ((i * 7_919) % 600_000));
    expect(await lastArrival(day)).toBe(PER_ARRIVAL);
    await merge();
    const scanned = await lastArrival(day);
    expect(scanned).toBeGreaterThanOrEqual(about(ARRIVALS * PER_ARRIVAL).atLeast);
    expect(scanned).toBeLessThan(about(ARRIVALS * PER_ARRIVAL).below);
  });

  it('stays near the last arrival after the merge when a day arrives in event-time order', async () => {
    const day = '2026-03-03';
    const start = Date.UTC(2026, 2, 3, 12);
    await fillDay(day, (arrival, i) => start + arrival * 600_000 + i);
    await merge();
    const scanned = await lastArrival(day);
    expect(scanned).toBeGreaterThanOrEqual(about(PER_ARRIVAL).atLeast);
    expect(scanned).toBeLessThan(about(PER_ARRIVAL).below);
  });

  it('is what a revision of a day reports for its delta, so the revisor paces a day by it', async () => {
    const day = '2026-03-04';
    const start = Date.UTC(2026, 2, 4, 12);
    await fillDay(day, (_, i) => start + ((i * 7_919) % 600_000));
    const mark = (hwm: number) => ({ epoch: EPOCH, hwm, delivered: hwm });
    const first = await computeDay(ch.client, ch.db, report, day, mark(ARRIVALS - 1), { replay: false, wholeBelow: 0 });
    expect(first.mode).toBe('full');
    await first.commit();
    await merge();
    const delta = await computeDay(ch.client, ch.db, report, day, mark(ARRIVALS), { replay: false, wholeBelow: 0 });
    expect(delta.mode).toBe('delta');
    expect(delta.rowsRead).toBe(PER_ARRIVAL);
    expect(delta.rowsScanned).toBeGreaterThanOrEqual(about(ARRIVALS * PER_ARRIVAL).atLeast);
    expect(delta.rowsScanned).toBeLessThan(about(ARRIVALS * PER_ARRIVAL).below);
    expect(delta.figures.reduce((n, f) => n + f.events, 0)).toBe(ARRIVALS * PER_ARRIVAL);
  });
});
