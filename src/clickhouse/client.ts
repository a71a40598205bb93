import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createClient, type ClickHouseClient, type ClickHouseSettings } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import type { Config } from '../core/config.ts';

/**
 * Settings sent with every call. chDB keeps per-call settings set on its session
 * and defaults to async inserts with insert dedup, so we never rely on defaults:
 * inserts are synchronous and dedup is opt-in per call through a token.
 */
export const BASE_SETTINGS: ClickHouseSettings = {
  async_insert: 0,
  wait_for_async_insert: 1,
  output_format_json_quote_64bit_integers: 1,
  output_format_json_quote_decimals: 1,
  date_time_input_format: 'best_effort',
};

export type ClickHouseTarget = { kind: 'embedded'; path: string } | { kind: 'server'; url: string };

export function clickHouseTarget(config: Config): ClickHouseTarget {
  if (config.clickhouse.url) return { kind: 'server', url: config.clickhouse.url };
  return { kind: 'embedded', path: resolve(join(config.dataDir, 'clickhouse')) };
}

/**
 * The one place that builds a ClickHouse client: chDB in process when no
 * CLICKHOUSE_URL is set, a server over HTTP otherwise. The database is not
 * selected here because it may not exist yet; queries name it explicitly.
 */
export function openClickHouse(config: Config): ClickHouseClient {
  const target = clickHouseTarget(config);
  if (target.kind === 'embedded') {
    mkdirSync(target.path, { recursive: true });
    // chDB implements the same Connection contract against its own copy of client-common's types
    const connection = createChdbConnection({ path: target.path }) as unknown as NonNullable<Parameters<typeof createClient>[0]>['connection'];
    return createClient({ connection, clickhouse_settings: BASE_SETTINGS });
  }
  return createClient({
    url: target.url,
    username: config.clickhouse.user ?? 'default',
    password: config.clickhouse.password ?? '',
    clickhouse_settings: BASE_SETTINGS,
    request_timeout: 60_000,
  });
}
