import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import fc from 'fast-check';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse } from '../src/clickhouse/client.ts';
import type { TidemarkEvent } from '../src/core/envelope.ts';
import { startNatsGateway, type NatsGateway } from '../src/ingest/nats-gateway.ts';
import { freePort } from '../src/nats/embedded-server.ts';
import { ensureTopology } from '../src/nats/topology.ts';
import { DAILY_BUCKET, type StoredRevision } from '../src/processors/daily/revision-store.ts';
import { businessDay } from '../src/processors/logic/business-day.ts';
import { dailyFigures } from '../src/sinks/clickhouse/daily-figures.ts';
import { publishedRevisions } from '../src/sinks/clickhouse/report-queries.ts';
import { testConfig } from './harness/config.ts';
import { startTestNats, type TestNats } from './harness/nats.ts';
import { streamCount, waitFor } from './harness/streams.ts';
import { dayGroupKey, oracleDaily } from './support/oracle.ts';

const DAY = 86_400_000;
const settings = {
  nats: { ackWait: '1s' },
  processor: { batchSize: 250 },
  reports: [{
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
  }],
};
const config = testConfig(settings);
const report = config.reports[0]!;

let server: TestNats;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let gateway: NatsGateway;
let dir: string;
let configFile: string;
let chPort: number;

beforeAll(async () => {
  server = await startTestNats();
  dir = mkdtempSync(join(tmpdir(), 'tidemark-oracle-'));
  configFile = join(dir, 'tidemark.yaml');
  writeFileSync(configFile, JSON.stringify(settings));
  chPort = await freePort();
  nc = await connect({ servers: server.url });
  jsm = await jetstreamManager(nc);
  js = jetstream(nc);
  await ensureTopology(jsm, config);
  gateway = await startNatsGateway({ js, nc, config, logger: pino({ level: 'silent' }) });
});

afterAll(async () => {
  await gateway?.stop();
  await nc?.close();
  await server?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function startProcessorProcess(): ChildProcess {
  return spawn(process.execPath, ['bin/tidemark.mjs', 'processor', '--config', configFile], {
    env: { ...process.env, NATS_URL: server.url, TIDEMARK_DATA_DIR: dir, TIDEMARK_CLICKHOUSE_HTTP_PORT: String(chPort), LOG_LEVEL: 'error' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

const exited = (child: ChildProcess) => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

/** A seeded stream: out of order, several sources, open days and days already past their close, re-sent duplicates. */
function seededStream(now: number) {
  const today = Date.parse(`${businessDay(now, 'Asia/Taipei')}T00:00:00+08:00`);
  const dayStarts = [1, 2, 6, 9].map((n) => today - n * DAY);
  const event = fc.record({
    source: fc.constantFrom('store-1', 'store-2', 'store-3'),
    day: fc.constantFrom(...dayStarts),
    offset: fc.integer({ min: 0, max: DAY - 1 }),
    cents: fc.integer({ min: -5_000, max: 500_000 }),
    buyer: fc.constantFrom('ann', 'bo', 'cy', 'di', 'ed', 'fay'),
  });
  const drawn = fc.sample(fc.array(event, { minLength: 12_000, maxLength: 12_000 }), { seed: 42, numRuns: 1 })[0]!;
  const unique = drawn.map((e, i) => ({
    id: `e-${i}`,
    subject: `ingest.${e.source}.sale`,
    body: JSON.stringify({ id: `e-${i}`, occurredAt: e.day + e.offset, data: { amount: (e.cents / 100).toFixed(2), buyer: e.buyer } }),
  }));
  const resent = fc.sample(fc.subarray(unique, { minLength: 600, maxLength: 600 }), { seed: 7, numRuns: 1 })[0]!;
  return { unique, all: [...unique, ...resent] };
}

describe('processor killed with SIGKILL mid-stream', () => {
  it('ends with exactly the oracle figures, gap-free revisions, and raw events that agree', async () => {
    const { unique, all } = seededStream(Date.now());
    let processor = startProcessorProcess();
    for (const msg of all) nc.publish(msg.subject, msg.body);
    await nc.flush();

    await waitFor(async () => (await jsm.consumers.info('EVENTS', 'processor')).ack_floor.stream_seq > 2_500, 60_000, 'the processor to be under way');
    processor.kill('SIGKILL');
    await exited(processor);
    const ackedAtKill = (await jsm.consumers.info('EVENTS', 'processor')).ack_floor.stream_seq;
    expect(ackedAtKill).toBeLessThan(unique.length);

    processor = startProcessorProcess();
    const kv = await new Kvm(js).open(DAILY_BUCKET);
    try {
      await waitFor(async () => (await streamCount(jsm, 'EVENTS')) === unique.length && (await jsm.consumers.info('EVENTS', 'processor')).ack_floor.stream_seq === unique.length, 90_000, 'the processor to ack every event');
      await waitFor(async () => {
        const dirty = [];
        for await (const key of await kv.keys('dirty.>')) dirty.push(key);
        return dirty.length === 0;
      }, 30_000, 'every dirty day to be revised');
    } finally {
      processor.kill('SIGTERM');
      await exited(processor);
    }
    expect(processor.exitCode).toBe(0);
    for await (const key of await kv.keys('rev.>')) expect((await kv.get(key))!.json<StoredRevision>().written).toBe(true);

    const stored: TidemarkEvent[] = unique.map((m) => {
      const body = JSON.parse(m.body) as { id: string; occurredAt: number; data: Record<string, unknown> };
      return { id: body.id, type: 'sale', source: m.subject.split('.')[1]!, key: null, occurredAt: body.occurredAt, receivedAt: 0, data: body.data, seq: 0 };
    });
    const oracle = oracleDaily(report, stored);
    const client = openClickHouse(testConfig({ dataDir: dir }));
    try {
      const db = config.clickhouse.database;
      const counted = await (await client.query({ query: `SELECT count() AS n, uniqExact(id) AS ids FROM ${db}.events FINAL`, format: 'JSONEachRow' })).json<{ n: string; ids: string }>();
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
    } finally {
      await client.close();
    }
  }, 180_000);
});
