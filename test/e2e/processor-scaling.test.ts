import { describe, expect, it } from 'vitest';
import { testConfig } from '../harness/config.ts';
import { spawnRole, useProcessStack } from '../harness/process-stack.ts';
import { terminate, waitForDailyView } from '../harness/processes.ts';
import { waitFor } from '../harness/streams.ts';
import { expectOracleFigures, salesReport, seededSales } from '../support/seeded-stream.ts';

const settings = {
  processor: { batchSize: 200 },
  // small packs, so the stream has enough messages for both processes to get a share
  ingest: { eventsPerMessage: 10 },
  reports: [{ ...salesReport, windows: [{ size: '1h', slide: '30m' }] }],
};
const config = testConfig(settings);

const stack = useProcessStack(settings, 'tidemark-scale-');

describe('two processor processes on one durable consumer and one ClickHouse endpoint', () => {
  it('share the stream and publish the same figures and gap-free revisions as one would', async () => {
    const { nc, js, jsm, client } = stack;
    const processors = [spawnRole(stack, 'processor'), spawnRole(stack, 'processor')];
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
