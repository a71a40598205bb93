import type { ChildProcess } from 'node:child_process';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { BASE_SETTINGS } from '../../src/clickhouse/client.ts';
import { serveEmbeddedClickHouse, type EmbeddedClickHouseServer } from '../../src/clickhouse/http-server/server.ts';
import { migrate } from '../../src/clickhouse/migrations.ts';
import { testConfig } from './config.ts';
import { writeConfigDir } from './config-dir.ts';
import { useFixture } from './fixture.ts';
import { startTestIngest, type TestIngest } from './ingest.ts';
import { spawnTidemark, spawnTidemarkCaptured, type CapturedTidemark } from './processes.ts';

export type ConfiguredIngest = TestIngest & {
  /** a temp directory of the test's own, deleted by `dispose` */
  dir: string;
  /** `settings` as a config file, for `spawnTidemark` */
  configFile: string;
};

/** startTestIngest for `settings`, and those settings written as a config file in a temp directory. */
export async function startConfiguredIngest(settings: Record<string, unknown>, prefix: string): Promise<ConfiguredIngest> {
  const ingest = await startTestIngest(testConfig(settings));
  const files = writeConfigDir(settings, prefix);
  return {
    ...ingest,
    ...files,
    dispose: async () => {
      await ingest.dispose();
      await files.dispose();
    },
  };
}

/** startConfiguredIngest for the whole test file (see useFixture). */
export const useConfiguredIngest = (settings: Record<string, unknown>, prefix: string): ConfiguredIngest =>
  useFixture(() => startConfiguredIngest(settings, prefix));

export type ProcessStack = ConfiguredIngest & {
  /** the ClickHouse HTTP endpoint the spawned processes share (the test's chDB behind it) */
  clickhouse: EmbeddedClickHouseServer;
  client: ClickHouseClient;
  /** the ClickHouse database the settings name (the processes create their tables there) */
  db: string;
};

/**
 * What a test that runs tidemark processes needs: a real nats-server with the ingest
 * gateway and the settings as a config file (startConfiguredIngest), an embedded ClickHouse
 * served over HTTP on a free port, and a client for it; with `migrated`, the configured
 * database is migrated before any process starts. `dispose` closes and deletes all of it.
 */
export async function startProcessStack(settings: Record<string, unknown>, prefix: string, options: { migrated?: boolean } = {}): Promise<ProcessStack> {
  const ingest = await startConfiguredIngest(settings, prefix);
  const clickhouse = (await serveEmbeddedClickHouse(testConfig({ dataDir: ingest.dir }), { port: 0 }))!;
  const client = createClient({ url: clickhouse.url, clickhouse_settings: BASE_SETTINGS });
  const db = testConfig(settings).clickhouse.database;
  if (options.migrated) await migrate(client, db);
  return {
    ...ingest,
    clickhouse,
    client,
    db,
    dispose: async () => {
      await client.close();
      await clickhouse.close();
      await ingest.dispose();
    },
  };
}

/** startProcessStack for the whole test file (see useFixture). */
export const useProcessStack = (settings: Record<string, unknown>, prefix: string, options: { migrated?: boolean } = {}): ProcessStack =>
  useFixture(() => startProcessStack(settings, prefix, options));

/** `tidemark <role> --config <the stack's file>` as a process, on the stack's NATS and ClickHouse endpoint. */
export const spawnRole = (stack: ProcessStack, role: string, env: Record<string, string> = {}): ChildProcess =>
  spawnTidemark([role, '--config', stack.configFile], { NATS_URL: stack.server.url, CLICKHOUSE_URL: stack.clickhouse.url, ...env });

/** spawnRole with the process's output kept (spawnTidemarkCaptured: warnings and errors, as JSON lines). */
export const spawnRoleCaptured = (stack: ProcessStack, role: string, env: Record<string, string> = {}): CapturedTidemark =>
  spawnTidemarkCaptured([role, '--config', stack.configFile], { NATS_URL: stack.server.url, CLICKHOUSE_URL: stack.clickhouse.url, ...env });
