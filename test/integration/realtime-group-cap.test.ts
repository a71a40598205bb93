import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/core/metrics.ts';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { shiftedClock } from '../support/clock.ts';
import { groupCap } from '../../src/processors/realtime/group-cap.ts';
import { startRealtime } from '../../src/processors/realtime/realtime.ts';
import { realtimeMetricsFor } from '../../src/processors/realtime/metrics.ts';
import { replaceRealtimeView } from '../../src/sinks/clickhouse/realtime-table.ts';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { DlqRecord } from '../../src/nats/dlq.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { insertRealtime } from '../../src/sinks/clickhouse/realtime-table.ts';
import { insertOrFile } from '../../src/sinks/clickhouse/refused-rows.ts';
import { startTestNats } from '../harness/nats.ts';
import { json, readAll } from '../harness/streams.ts';
import { useTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';

const config = testConfig({ reports: [{ name: 'capped', types: ['sale'], groupBy: ['source'], measures: { orders: { fn: 'count' } }, windows: [{ size: '10s', slide: '5s' }] }] });
const report = config.reports[0]!;
const sale = (i: number, source: string, at: number): TidemarkEvent => ({ id: `e${i}`, type: 'sale', source, key: null, occurredAt: at, receivedAt: at + 1, data: {}, seq: i });

describe('realtime group cap (pure)', () => {
  it('admits the groups it holds and new ones only while under the limit, and frees a group once its windows are closed', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 60_000 })), { maxLength: 60 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 80_000 }), (events, max, watermark) => {
        const cap = groupCap(report, max);
        // oracle: a set of groups in arrival order and each one's latest time
        const held = new Map<string, number>();
        events.forEach(([g, at], i) => {
          const source = `g${g}`;
          const expected = held.has(source) || held.size < max;
          if (expected) held.set(source, Math.max(held.get(source) ?? at, at));
          expect(cap.admits(sale(i, source, at))).toBe(expected);
        });
        cap.release(watermark);
        expect(cap.size).toBe([...held.values()].filter((latest) => latest + 10_000 > watermark).length);
      }),
      { seed: 18, numRuns: 300 },
    );
  });
});


const ch = useTestClickHouse((opened) => replaceRealtimeView(opened.client, opened.db, config.reports));

describe('realtime group cap', () => {
  it('keeps at most processor.maxRealtimeGroups groups in the realtime view, counts the events it left out, and takes new groups once windows close', async () => {
    const base = Math.floor(Date.now() / 10_000) * 10_000 - 60_000;
    const clock = shiftedClock();
    const registry = createRegistry();
    const rt = startRealtime({ reports: [report], clickhouse: ch.client, db: ch.db, clock, logger: pino({ level: 'silent' }), instance: 'cap', refreshMs: 60_000, idleMs: 200, outOfOrdernessMs: 0, maxSources: 100, recentIds: 1_000, livenessMs: 30_000, maxGroups: 3, metrics: realtimeMetricsFor(registry) });
    rt.arrive(1, false, Array.from({ length: 10 }, (_, i) => sale(i, `s${i % 5}`, base + 1_000 + i)));
    await rt.flush();
    const groups = async () => {
      const result = await ch.client.query({ query: `SELECT DISTINCT group_key FROM ${ch.db}.realtime_windows WHERE report = 'capped' AND instance = 'cap' ORDER BY group_key`, format: 'JSONEachRow' });
      return (await result.json<{ group_key: string }>()).map((r) => r.group_key);
    };
    expect(await groups()).toEqual(['["s0"]', '["s1"]', '["s2"]']);
    // s3 and s4 sent 2 events each
    expect(rt.stats.groupsCut).toBe(4);
    expect((await registry.getSingleMetric('tidemark_realtime_events_cut_total')!.get()).values).toEqual([expect.objectContaining({ labels: { report: 'capped' }, value: 4 })]);

    // input stops, the watermark follows the clock, every window closes: the places free up
    clock.shift(30_000);
    await rt.flush();
    rt.arrive(2, false, [sale(100, 's4', base + 40_000)]);
    await rt.flush();
    expect(await groups()).toContain('["s4"]');
    expect(rt.stats.groupsCut).toBe(4);
    await rt.stop();
  }, 60_000);
});

describe('a realtime row ClickHouse refuses', () => {
  it('is filed in the DLQ once; the other windows are written and later refreshes go on', async () => {
    const server = await startTestNats();
    const nc = await connect({ servers: server.url });
    try {
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      await ensureTopology(jsm, config);
      await ch.client.command({ query: `ALTER TABLE ${ch.db}.realtime_windows ADD CONSTRAINT refuse_rt CHECK group_key != '["rt-poison"]'` });
      const base = Math.floor(Date.now() / 10_000) * 10_000 - 60_000;
      const clock = shiftedClock();
      const rt = startRealtime({
        reports: [report], clickhouse: ch.client, db: ch.db, clock, logger: pino({ level: 'silent' }), instance: 'refusal', refreshMs: 60_000, idleMs: 60_000, outOfOrdernessMs: 0, maxSources: 100, recentIds: 1_000, livenessMs: 30_000, metrics: realtimeMetricsFor(createRegistry()),
        insert: (rows) => insertOrFile(js, 'realtime_windows', rows, (part) => insertRealtime(ch.client, ch.db, part), clock.now()),
      });
      rt.arrive(3, false, [sale(1, 'rt-a', base + 1_000), sale(2, 'rt-poison', base + 1_001), sale(3, 'rt-b', base + 1_002)]);
      await rt.flush();
      const groups = async () => {
        const result = await ch.client.query({ query: `SELECT group_key, max(events) AS events FROM ${ch.db}.realtime_windows FINAL WHERE instance = 'refusal' AND size_ms > 0 GROUP BY group_key ORDER BY group_key`, format: 'JSONEachRow' });
        return (await result.json<{ group_key: string; events: number }>()).map((r) => `${r.group_key} ${r.events}`);
      };
      expect(await groups()).toEqual(['["rt-a"] 1', '["rt-b"] 1']);
      const filed = () => readAll(js, jsm, 'DLQ').then((msgs) => msgs.map((m) => json<DlqRecord>(m)).filter((r) => r.subject === 'sink.realtime_windows'));
      // the event lies in two sliding windows (10 s every 5 s): two rows refused
      expect((await filed()).map((r) => r.code)).toEqual(['REFUSED_BY_SINK', 'REFUSED_BY_SINK']);
      // not pending any more: the next refresh writes the new figure of a fine group without failing on the refused one
      rt.arrive(4, false, [sale(4, 'rt-a', base + 1_003)]);
      await rt.flush();
      expect(await groups()).toEqual(['["rt-a"] 2', '["rt-b"] 1']);
      expect(await filed()).toHaveLength(2);
      await rt.stop();
    } finally {
      await ch.client.command({ query: `ALTER TABLE ${ch.db}.realtime_windows DROP CONSTRAINT refuse_rt` }).catch(() => undefined);
      await nc.close();
      await server.dispose();
    }
  }, 60_000);
});
