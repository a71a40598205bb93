import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { BASE_SETTINGS } from '../../src/clickhouse/client.ts';
import { serveEmbeddedClickHouse, type EmbeddedClickHouseServer } from '../../src/clickhouse/http-server/server.ts';
import { migrate } from '../../src/clickhouse/migrations.ts';
import { startNatsGateway } from '../../src/ingest/nats-gateway.ts';
import { connectNats } from '../../src/nats/connect.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { startProcessor } from '../../src/processors/processor.ts';
import { testConfig } from '../harness/config.ts';
import { startTestNats } from '../harness/nats.ts';
import { waitForDailyView } from '../harness/processes.ts';
import { waitFor } from '../harness/streams.ts';
import { expectOracleFigures, salesReport, seededSales } from '../support/seeded-stream.ts';

const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The pipeline of `tidemark up`, in process: gateway and processor on production connections, ClickHouse behind its HTTP endpoint. */
async function startPipeline(chPort = 0) {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-outage-'));
  dirs.push(dir);
  const server = await startTestNats();
  const config = testConfig({ reports: [salesReport], nats: { ackWait: '2s' } });
  let clickhouse: EmbeddedClickHouseServer = (await serveEmbeddedClickHouse(testConfig({ dataDir: dir }), { port: chPort }))!;
  // the outage makes the client log every failed request; the test asserts on outcomes instead
  const client = createClient({ url: clickhouse.url, clickhouse_settings: BASE_SETTINGS, request_timeout: 5_000, log: { level: ClickHouseLogLevel.OFF } });
  await migrate(client, config.clickhouse.database);
  const nc = await connectNats(config, server.url, 'test');
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  await ensureTopology(jsm, config);
  const gateway = await startNatsGateway({ js, nc, config, logger });
  const processor = await startProcessor({ config, js, clickhouse: client, logger, revisorIntervalMs: 50 });
  return {
    server, nc, js, jsm, client, config, processor,
    stopClickHouse: () => clickhouse.close(),
    startClickHouse: async () => {
      clickhouse = (await serveEmbeddedClickHouse(testConfig({ dataDir: dir }), { port: Number(new URL(clickhouse.url).port) }))!;
    },
    dispose: async () => {
      await processor.stop();
      await gateway.stop();
      await nc.close();
      await client.close();
      await clickhouse.close();
      await server.dispose();
    },
  };
}

describe('the pipeline through outages', () => {
  it('loses and doubles nothing when nats-server restarts mid-stream', async () => {
    const p = await startPipeline();
    try {
      const { unique, all } = seededSales(Date.now(), 6_000, 300, 11);
      const half = Math.floor(all.length / 2);
      for (const msg of all.slice(0, half)) p.nc.publish(msg.subject, msg.body);
      await p.nc.flush();
      await waitFor(() => p.processor.stats.events > 500, 30_000, 'the processor to be under way');
      await p.server.restart();
      await waitFor(async () => (await p.nc.rtt()) >= 0, 60_000, 'the client to reconnect');
      for (const msg of all.slice(half)) p.nc.publish(msg.subject, msg.body);
      await p.nc.flush();
      await waitForDailyView(p.js, p.jsm, unique.length);
      await expectOracleFigures(p.client, p.config.clickhouse.database, p.config.reports[0]!, unique);
    } finally {
      await p.dispose();
    }
  }, 120_000);

  it('holds events unacked while ClickHouse is away and stores each once when it is back', async () => {
    const p = await startPipeline();
    try {
      const { unique, all } = seededSales(Date.now(), 4_000, 200, 12);
      const first = all.slice(0, 1_000);
      for (const msg of first) p.nc.publish(msg.subject, msg.body);
      await p.nc.flush();
      const settled = async () => {
        const [gateway, processor] = await Promise.all([p.jsm.consumers.info('INGEST', 'gateway'), p.jsm.consumers.info('EVENTS', 'processor')]);
        return gateway.ack_floor.stream_seq === first.length && processor.num_pending === 0 && processor.num_ack_pending === 0;
      };
      await waitFor(settled, 30_000, 'the first events to be stored');
      const storedBefore = p.processor.stats.events;

      await p.stopClickHouse();
      for (const msg of all.slice(1_000)) p.nc.publish(msg.subject, msg.body);
      await p.nc.flush();
      await waitFor(() => p.processor.stats.insertRetries >= 3, 30_000, 'inserts to fail and be retried');
      const held = await p.jsm.consumers.info('EVENTS', 'processor');
      expect(held.num_ack_pending).toBeGreaterThan(0);
      expect(p.processor.stats.events).toBe(storedBefore);

      await p.startClickHouse();
      await waitForDailyView(p.js, p.jsm, unique.length);
      await expectOracleFigures(p.client, p.config.clickhouse.database, p.config.reports[0]!, unique);
    } finally {
      await p.dispose();
    }
  }, 120_000);
});
