import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { realtimeCappedAlert } from '../../src/processors/realtime/capped-alert.ts';
import { startProcessor, type Processor } from '../../src/processors/processor.ts';
import { closeTestClickHouse, openTestClickHouse, type TestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { startTestIngest, type TestIngest } from '../harness/ingest.ts';
import { json, readAll, waitFor } from '../harness/streams.ts';

const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
const REPORT = 'cap_alert';

describe('the realtime CardinalityCapped alert (pure)', () => {
  it('has one id per report and UTC day of the cut event, whatever group or time of day', () => {
    const day = Date.parse('2026-12-06T00:00:00Z');
    const a = realtimeCappedAlert(REPORT, 2, { receivedAt: day + 1 }, '["x"]');
    const b = realtimeCappedAlert(REPORT, 2, { receivedAt: day + 86_399_999 }, '["y"]');
    const next = realtimeCappedAlert(REPORT, 2, { receivedAt: day + 86_400_000 }, '["x"]');
    expect(a.id).toBe(`capped-realtime:${REPORT}:2026-12-06`);
    expect(b.id).toBe(a.id);
    expect(next.id).toBe(`capped-realtime:${REPORT}:2026-12-07`);
    expect(realtimeCappedAlert('other', 2, { receivedAt: day }, '').id).not.toBe(a.id);
    // a group cut inside a surrogate pair stays well-formed
    expect(realtimeCappedAlert(REPORT, 2, { receivedAt: day }, `${'a'.repeat(63)}😀`).example).toBe(`${'a'.repeat(63)}\ufffd`);
  });
});

let ingest: TestIngest;
let ch: TestClickHouse;
const processors: Processor[] = [];
let config: ReturnType<typeof testConfig>;

beforeAll(async () => {
  ch = await openTestClickHouse();
  config = testConfig({
    clickhouse: { database: ch.db },
    processor: { maxRealtimeGroups: 2, batchSize: 20 },
    ingest: { eventsPerMessage: 1 },
    reports: [{ name: REPORT, types: ['sale'], groupBy: ['source'], measures: { orders: { fn: 'count' } }, windows: [{ size: '1h', slide: '30m' }] }],
  });
  ingest = await startTestIngest(config);
}, 60_000);

afterAll(async () => {
  for (const p of processors) await p.stop().catch(() => undefined);
  await ingest?.dispose();
  await ch?.dispose();
  await closeTestClickHouse();
});

let sent = 0;
/** One event from each of `sources` new sources: more groups than the cap holds. */
async function publishNewSources(sources: number): Promise<void> {
  for (let i = 0; i < sources; i++) {
    const n = sent++;
    ingest.nc.publish(`ingest.src-${n}.sale`, JSON.stringify({ id: `e${n}`, occurredAt: Date.now() }));
  }
  await ingest.nc.flush();
}

const cappedAlerts = async () =>
  (await readAll(ingest.js, ingest.jsm, 'ALERTS')).filter((m) => m.subject === `alerts.capped.${REPORT}`).map((m) => json<{ id: string; kind: string; report: string; scope: string; limit: number; day: string }>(m));

const decided = (p: Processor) => p.capped.outcomes.published + p.capped.outcomes.duplicate;
const today = () => new Date().toISOString().slice(0, 10);

describe('processor.maxRealtimeGroups raises CardinalityCapped', () => {
  it('once per report and day: not per cut event, not again from a second processor, nor after a restart', async () => {
    const dayBefore = today();
    const first = await startProcessor({ config, js: ingest.js, clickhouse: ch.client, logger });
    const second = await startProcessor({ config, js: ingest.js, clickhouse: ch.client, logger });
    processors.push(first, second);
    // both pull from the one durable: rounds of new sources until each has cut events and settled its alert
    await waitFor(async () => {
      if (decided(first) >= 1 && decided(second) >= 1) return true;
      await publishNewSources(20);
      await new Promise((r) => setTimeout(r, 200));
      return false;
    }, 60_000, 'both processors to cut events and raise (or find raised) the alert');
    expect(first.realtime.stats.groupsCut + second.realtime.stats.groupsCut).toBeGreaterThan(2);
    expect(first.capped.outcomes.published + second.capped.outcomes.published).toBe(1);

    // a restart: the new instance's cap fills up again and cuts again on the same day
    await first.stop();
    processors.splice(processors.indexOf(first), 1);
    const restarted = await startProcessor({ config, js: ingest.js, clickhouse: ch.client, logger });
    processors.push(restarted);
    await waitFor(async () => {
      if (decided(restarted) >= 1) return true;
      await publishNewSources(20);
      await new Promise((r) => setTimeout(r, 200));
      return false;
    }, 60_000, 'the restarted processor to cut events and settle its alert');
    const spansMidnight = today() !== dayBefore;
    if (!spansMidnight) expect(restarted.capped.outcomes).toEqual({ published: 0, duplicate: 1 });

    const alerts = await cappedAlerts();
    expect(alerts).toHaveLength(spansMidnight ? new Set(alerts.map((a) => a.day)).size : 1);
    expect(alerts[0]).toMatchObject({ id: `capped-realtime:${REPORT}:${dayBefore}`, kind: 'CardinalityCapped', report: REPORT, scope: 'realtime', limit: 2, day: dayBefore });
  }, 150_000);
});
