import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { openClickHouse } from '../../src/clickhouse/client.ts';
import { migrate } from '../../src/clickhouse/migrations.ts';
import { testConfig } from './config.ts';
import { useFixture } from './fixture.ts';

export type TestClickHouse = { client: ClickHouseClient; db: string; dataDir: string; dispose: () => Promise<void> };

let engine: { client: ClickHouseClient; dataDir: string } | undefined;
let counter = 0;

/**
 * Embedded ClickHouse for a test file. chDB binds one data directory per process and
 * vitest runs each file in its own fork, so the file shares one engine and each
 * caller gets its own freshly migrated database (up to schema version `until`, to test a migration).
 */
export async function openTestClickHouse(until?: number): Promise<TestClickHouse> {
  if (!engine) {
    const dataDir = mkdtempSync(join(tmpdir(), 'tidemark-ch-'));
    engine = { client: openClickHouse(testConfig({ dataDir })), dataDir };
  }
  const db = `t${process.pid}_${++counter}`;
  await migrate(engine.client, db, { until });
  const { client, dataDir } = engine;
  return {
    client,
    db,
    dataDir,
    dispose: async () => {
      await client.command({ query: `DROP DATABASE IF EXISTS ${db}` });
    },
  };
}

/** Closes the engine of this process and removes its files (call once in the file's afterAll). */
export async function closeTestClickHouse(): Promise<void> {
  if (!engine) return;
  const { client, dataDir } = engine;
  engine = undefined;
  await client.close();
  rmSync(dataDir, { recursive: true, force: true });
}

/**
 * The file's own database for tests that need nothing else (see useFixture): opened in a
 * beforeAll (then `prepare`, for views or rows the file's tests share); dropped, and the engine
 * closed, in an afterAll. `ch.client` and `ch.db` work
 * inside tests and later hooks.
 */
export const useTestClickHouse = (prepare?: (ch: TestClickHouse) => Promise<unknown>): TestClickHouse =>
  useFixture(async () => {
    const opened = await openTestClickHouse();
    await prepare?.(opened);
    return {
      ...opened,
      dispose: async () => {
        await opened.dispose();
        await closeTestClickHouse();
      },
    };
  });
