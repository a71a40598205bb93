import { Kvm } from '@nats-io/kv';
import { beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse } from '../../src/clickhouse/client.ts';
import { freePort } from '../../src/nats/embedded-server.ts';
import { DAILY_BUCKET, type StoredRevision } from '../../src/processors/daily/revision-store.ts';
import { testConfig } from '../harness/config.ts';
import { useConfiguredIngest } from '../harness/process-stack.ts';
import { exited, spawnTidemark, terminate, waitForDailyView } from '../harness/processes.ts';
import { kvKeys, waitFor } from '../harness/streams.ts';
import { expectOracleFigures, salesReport, seededSales } from '../support/seeded-stream.ts';

const settings = {
  nats: { ackWait: '1s' },
  processor: { batchSize: 250 },
  // small packs, so the kill lands between many acked and many unacked messages
  ingest: { eventsPerMessage: 10 },
  reports: [salesReport],
};
const config = testConfig(settings);
const report = config.reports[0]!;

const ingest = useConfiguredIngest(settings, 'tidemark-oracle-');
let chPort: number;

beforeAll(async () => {
  chPort = await freePort();
});

const startProcessorProcess = () => spawnTidemark(['processor', '--config', ingest.configFile], { NATS_URL: ingest.server.url, TIDEMARK_DATA_DIR: ingest.dir, TIDEMARK_CLICKHOUSE_HTTP_PORT: String(chPort) });

describe('processor killed with SIGKILL mid-stream', () => {
  it('ends with exactly the oracle figures, gap-free revisions, and raw events that agree', async () => {
    const { nc, js, jsm, dir } = ingest;
    const { unique, all } = seededSales(Date.now(), 12_000, 600);
    let processor = startProcessorProcess();
    for (const msg of all) nc.publish(msg.subject, msg.body);
    await nc.flush();

    await waitFor(async () => (await jsm.consumers.info('EVENTS', 'processor')).ack_floor.stream_seq > 250, 60_000, 'the processor to be under way');
    processor.kill('SIGKILL');
    await exited(processor);
    const ackedAtKill = (await jsm.consumers.info('EVENTS', 'processor')).ack_floor.stream_seq;
    expect(ackedAtKill).toBeLessThan((await jsm.streams.info('EVENTS')).state.last_seq);

    processor = startProcessorProcess();
    try {
      await waitForDailyView(js, jsm, unique.length);
    } finally {
      expect(await terminate(processor)).toBe(0);
    }
    const kv = await new Kvm(js).open(DAILY_BUCKET);
    const revisions = await kvKeys(jsm, DAILY_BUCKET, 'rev.>');
    expect(revisions.length).toBeGreaterThan(0);
    for (const key of revisions) expect((await kv.get(key))!.json<StoredRevision>().written).toBe(true);

    const client = openClickHouse(testConfig({ dataDir: dir }));
    try {
      await expectOracleFigures(client, config.clickhouse.database, report, unique);
    } finally {
      await client.close();
    }
  }, 300_000);
});
