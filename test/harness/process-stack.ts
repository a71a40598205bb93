import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { BASE_SETTINGS } from '../../src/clickhouse/client.ts';
import { serveEmbeddedClickHouse, type EmbeddedClickHouseServer } from '../../src/clickhouse/http-server/server.ts';
import { testConfig } from './config.ts';
import { startTestIngest, type TestIngest } from './ingest.ts';

export type ProcessStack = TestIngest & {
  /** the ClickHouse HTTP endpoint the spawned processes share (the test's chDB behind it) */
  clickhouse: EmbeddedClickHouseServer;
  client: ClickHouseClient;
  dir: string;
  /** `settings` as a config file, for `spawnTidemark` */
  configFile: string;
};

/**
 * What a test that runs tidemark processes needs: a real nats-server with the ingest
 * gateway (startTestIngest), an embedded ClickHouse served over HTTP on a free port, a
 * client for it, and the settings written as a config file in a temp directory.
 * `dispose` closes and deletes all of it.
 */
export async function startProcessStack(settings: Record<string, unknown>, prefix: string): Promise<ProcessStack> {
  const ingest = await startTestIngest(testConfig(settings));
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const configFile = join(dir, 'tidemark.yaml');
  writeFileSync(configFile, JSON.stringify(settings));
  const clickhouse = (await serveEmbeddedClickHouse(testConfig({ dataDir: dir }), { port: 0 }))!;
  const client = createClient({ url: clickhouse.url, clickhouse_settings: BASE_SETTINGS });
  return {
    ...ingest,
    clickhouse,
    client,
    dir,
    configFile,
    dispose: async () => {
      await client.close();
      await clickhouse.close();
      await ingest.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
