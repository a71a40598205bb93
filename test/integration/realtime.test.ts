import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { shiftedClock } from '../support/clock.ts';
import { startRealtime } from '../../src/processors/realtime/realtime.ts';
import { replaceRealtimeView } from '../../src/sinks/clickhouse/realtime-table.ts';
import { useTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';

const logger = pino({ level: 'silent' });
const config = testConfig({
  reports: [{
    name: 'rt',
    types: ['sale'],
    groupBy: ['source'],
    measures: {
      amount: { fn: 'sum', field: 'amount' },
      orders: { fn: 'count' },
      low: { fn: 'min', field: 'amount' },
      high: { fn: 'max', field: 'amount' },
      mean: { fn: 'avg', field: 'amount' },
      buyers: { fn: 'uniq', field: 'buyer' },
    },
    windows: [{ size: '10s', slide: '5s' }],
  }],
});
const report = config.reports[0]!;
const BASE = Math.floor(Date.now() / 10_000) * 10_000 - 60_000;

const sale = (i: number, at: number, amount: string, buyer: string): TidemarkEvent => ({
  id: `e${i}`, type: 'sale', source: 'store-1', key: null, occurredAt: at, receivedAt: at + 1, data: { amount, buyer }, seq: i,
});

type Latest = { window_start: string; events: string; measures: Record<string, string>; instances: string; closed: number; late_refused: string };
async function latest(): Promise<Latest[]> {
  const result = await ch.client.query({ query: `SELECT toUnixTimestamp64Milli(window_start) AS window_start, events, measures, instances, closed, late_refused FROM ${ch.db}.realtime_latest ORDER BY window_start`, format: 'JSONEachRow' });
  return result.json<Latest>();
}

const ch = useTestClickHouse((opened) => replaceRealtimeView(opened.client, opened.db, config.reports));

describe('realtime sliding windows', () => {
  it('merges partial windows of two instances exactly, and closes windows on the clock when input stops', async () => {
    const clock = shiftedClock();
    const make = (instance: string) => startRealtime({ reports: [report], clickhouse: ch.client, db: ch.db, clock, logger, instance, refreshMs: 60_000, idleMs: 200, outOfOrdernessMs: 0, maxSources: 100, recentIds: 1_000, livenessMs: 30_000 });
    const a = make('a');
    const b = make('b');
    a.arrive(1, false, [sale(1, BASE + 1_000, '10.10', 'x'), sale(2, BASE + 6_000, '0.05', 'y')]);
    b.arrive(2, false, [sale(3, BASE + 7_000, '100', 'x'), sale(4, BASE + 2_000, '3.333', 'z')]);
    // an instance closes nothing for idleMs after its first event, so the sources of a burst all register first
    clock.shift(200);
    await Promise.all([a.flush(), b.flush()]);

    const early = await latest();
    // event time reached BASE+6s/+7s, so the window ending at BASE+5s closed at this refresh
    expect(early.map((w) => [Number(w.window_start) - BASE, w.events, w.instances, Boolean(w.closed)])).toEqual([
      [-5_000, '2', '2', true],
      [0, '4', '2', false],
      [5_000, '2', '2', false],
    ]);
    expect(early[1]!.measures).toEqual({ amount: '113.483', orders: '4', low: '0.05', high: '100', mean: '28.37075', buyers: '3' });

    // no more input: after idleMs the watermark follows the clock from the last event time
    clock.shift(10_000);
    await Promise.all([a.flush(), b.flush()]);
    const closed = await latest();
    expect(closed.every((w) => Boolean(w.closed))).toBe(true);
    expect(closed[1]!.measures).toEqual(early[1]!.measures);

    a.arrive(3, false, [sale(5, BASE + 3_000, '999', 'q')]);
    await a.flush();
    expect(a.stats.lateRejected).toBe(1);
    const refused = await latest();
    expect(refused[1]!.measures.amount).toBe('113.483');
    // the refusal is shown on both windows that would have held the event, which keep their figures and instances
    expect(refused.map((w) => [Number(w.window_start) - BASE, w.late_refused, w.instances])).toEqual([[-5_000, '1', '2'], [0, '1', '2'], [5_000, '0', '2']]);
    await Promise.all([a.stop(), b.stop()]);
  });
});
