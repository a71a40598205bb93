import type { ClickHouseClient } from '@clickhouse/client';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EmbeddedClickHouseServer } from '../../src/clickhouse/http-server/server.ts';
import { testConfig } from '../harness/config.ts';
import type { TestNats } from '../harness/nats.ts';
import { startProcessStack, type ProcessStack } from '../harness/process-stack.ts';
import { spawnTidemark, terminate, waitForDailyView } from '../harness/processes.ts';
import { waitFor } from '../harness/streams.ts';
import { expectOracleFigures, salesReport, seededSales } from '../support/seeded-stream.ts';

const settings = {
  processor: { batchSize: 200 },
  // small packs, so the stream has enough messages for both processes to get a share
  ingest: { eventsPerMessage: 10 },
  reports: [{ ...salesReport, windows: [{ size: '1h', slide: '30m' }] }],
};
const config = testConfig(settings);

let stack: ProcessStack;
let server: TestNats;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let clickhouse: EmbeddedClickHouseServer;
let client: ClickHouseClient;
let configFile: string;

beforeAll(async () => {
  stack = await startProcessStack(settings, 'tidemark-scale-');
  ({ server, nc, js, jsm, clickhouse, client, configFile } = stack);
});

afterAll(async () => {
  await stack?.dispose();
});

describe('two processor processes on one durable consumer and one ClickHouse endpoint', () => {
  it('share the stream and publish the same figures and gap-free revisions as one would', async () => {
    const env = { NATS_URL: server.url, CLICKHOUSE_URL: clickhouse.url };
    const processors = [spawnTidemark(['processor', '--config', configFile], env), spawnTidemark(['processor', '--config', configFile], env)];
    const { unique, all } = seededSales(Date.now(), 10_000, 500, 7);
    try {
      // both pull before anything is published, so the work is shared and not all taken by the first one up
      await waitFor(async () => (await jsm.consumers.info('EVENTS', 'processor')).num_waiting >= 2, 60_000, 'both processors pulling');
      for (const msg of all) nc.publish(msg.subject, msg.body);
      await nc.flush();
      await waitForDailyView(js, jsm, unique.length);
    } finally {
      for (const processor of processors) expect(await terminate(processor)).toBe(0);
    }
    await expectOracleFigures(client, config.clickhouse.database, config.reports[0]!, unique);
    const instances = await (await client.query({ query: `SELECT uniqExact(instance) AS n FROM ${config.clickhouse.database}.realtime_windows WHERE events > 0`, format: 'JSONEachRow' })).json<{ n: string }>();
    expect(Number(instances[0]!.n)).toBe(2);
  }, 180_000);
});
