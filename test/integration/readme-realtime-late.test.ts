import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { shiftedClock } from '../support/clock.ts';
import { startRealtime } from '../../src/processors/realtime/realtime.ts';
import { replaceRealtimeView } from '../../src/sinks/clickhouse/realtime-table.ts';
import { useTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';

// README, the realtime view: "While a window is open, every processor.refresh emits it if it
// changed (early, emission 1, 2, …); when event time passes its end it gets one on_time
// emission; events that still arrive within the report's allowedLateness give late emissions;
// when the watermark passes the end, a final emission closes it" — read back from the
// `emission`, `timing` and `final` columns of realtime_windows in chDB after each refresh.
const config = testConfig({
  reports: [{ name: 'rt', types: ['sale'], groupBy: [], measures: { amount: { fn: 'sum', field: 'amount' } }, windows: [{ size: '10s', slide: '10s' }], allowedLateness: '5s' }],
});
const BASE = Math.floor(Date.now() / 10_000) * 10_000 - 60_000;
let seq = 0;
const sale = (offsetMs: number, amount: string): TidemarkEvent => {
  seq++;
  return { id: `e${seq}`, type: 'sale', source: 'till-1', key: null, occurredAt: BASE + offsetMs, receivedAt: BASE + offsetMs + 1, data: { amount }, seq };
};

const ch = useTestClickHouse((opened) => replaceRealtimeView(opened.client, opened.db, config.reports));

type Row = { emission: number; timing: string; final: number; amount: string };
async function firstWindow(): Promise<Row> {
  const result = await ch.client.query({
    query: `SELECT emission, timing, final, toString(measures['amount']) AS amount FROM ${ch.db}.realtime_windows FINAL
            WHERE report = 'rt' AND size_ms = 10000 AND instance = 'p1' AND toUnixTimestamp64Milli(window_start) = {start:Int64}`,
    query_params: { start: BASE },
    format: 'JSONEachRow',
  });
  const rows = await result.json<Row>();
  expect(rows).toHaveLength(1);
  return { ...rows[0]!, emission: Number(rows[0]!.emission), final: Number(rows[0]!.final) };
}

describe('realtime emissions: early, on_time, late, final', () => {
  it('with allowedLateness 5s, a window goes early → on_time → late → late and final, and refuses what comes after', async () => {
    // the source never goes idle (so the clock never moves event time) and nothing is held at start
    const realtime = startRealtime({
      reports: config.reports, clickhouse: ch.client, db: ch.db, clock: shiftedClock(), logger: pino({ level: 'silent' }), instance: 'p1',
      refreshMs: 600_000, idleMs: 600_000, holdMs: 0, outOfOrdernessMs: 0, maxSources: 10, recentIds: 100, livenessMs: 600_000,
    });
    const step = async (offsetMs: number, amount: string): Promise<Row> => {
      realtime.arrive(seq + 1, false, [sale(offsetMs, amount)]);
      await realtime.flush();
      return firstWindow();
    };
    try {
      expect(await step(1_000, '1')).toEqual({ emission: 1, timing: 'early', final: 0, amount: '1' });
      // event time 12 s passes the window's end (10 s); the watermark (12 − 5 = 7 s) does not
      expect(await step(12_000, '10')).toEqual({ emission: 2, timing: 'on_time', final: 0, amount: '1' });
      // within the lateness: the window takes it and says so
      expect(await step(2_000, '2')).toEqual({ emission: 3, timing: 'late', final: 0, amount: '3' });
      // the watermark (16 − 5 = 11 s) passes the end: the last emission is final
      expect(await step(16_000, '100')).toEqual({ emission: 4, timing: 'late', final: 1, amount: '3' });
      // after the final: refused, counted, the figure unchanged
      expect(await step(3_000, '4')).toEqual({ emission: 4, timing: 'late', final: 1, amount: '3' });
      expect(realtime.stats.lateRejected).toBe(1);
      const latest = await ch.client.query({
        query: `SELECT closed, late_refused, toString(measures['amount']) AS amount FROM ${ch.db}.realtime_latest WHERE report = 'rt' AND toUnixTimestamp64Milli(window_start) = {start:Int64}`,
        query_params: { start: BASE },
        format: 'JSONEachRow',
      });
      expect(await latest.json()).toEqual([{ closed: 1, late_refused: '1', amount: '3' }]);
    } finally {
      await realtime.stop();
    }
  });
});
