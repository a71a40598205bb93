import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createClient, type ClickHouseClient, type ClickHouseSettings } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import type { Config } from '../core/config.ts';
import { chdbLanes } from './chdb-pool.ts';

export { scanQueryId } from './chdb-pool.ts';

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

type RawInsert = (params: { table: string; values: Uint8Array; format: 'JSONCompactEachRow'; columns: string[]; settings: Record<string, string | number> }) => Promise<unknown>;

/** chDB's byte-passthrough insert on each chDB client's bulk connection. */
const rawInserters = new WeakMap<ClickHouseClient, RawInsert>();

/**
 * Rows already encoded as JSONCompactEachRow lines, inserted synchronously. In process
 * the bytes go to chDB's raw insert (its connection adapter would first copy them into
 * one SQL string: a fifth of the insert's CPU); to a server they are the request body.
 */
export async function insertEncodedRows(client: ClickHouseClient, table: string, columns: string[], body: Uint8Array, settings: ClickHouseSettings = {}): Promise<void> {
  const raw = rawInserters.get(client);
  if (raw) {
    // settings go into the INSERT itself, so nothing lingers on the session (see TRAPS: chDB keeps SET values)
    await raw({ table, values: body, format: 'JSONCompactEachRow', columns, settings: { ...BASE_SETTINGS, ...settings } as Record<string, string | number> });
    return;
  }
  const result = await client.exec({ query: `INSERT INTO ${table} (${columns.join(', ')}) FORMAT JSONCompactEachRow`, values: Readable.from([body]), clickhouse_settings: { ...BASE_SETTINGS, ...settings } });
  result.stream.resume();
  await finished(result.stream);
}

/**
 * Calls on the embedded engine at once: short ones (realtime writes, revisions,
 * readers) and scans. With the bulk insert connection that is four, the size of libuv's
 * thread pool, on which chDB runs every call.
 */
const LANES = { short: 2, scan: 1 };

/**
 * The one place that builds a ClickHouse client: chDB in process when no
 * CLICKHOUSE_URL is set, a server over HTTP otherwise. The database is not
 * selected here because it may not exist yet; queries name it explicitly.
 */
export function openClickHouse(config: Config): ClickHouseClient {
  const target = clickHouseTarget(config);
  if (target.kind === 'embedded') {
    mkdirSync(target.path, { recursive: true });
    // Bulk inserts get a connection of their own: a 20k-row insert must not hold up the
    // realtime view's writes, a late day's revision or a reader.
    const bulk = createChdbConnection({ path: target.path });
    const connection = chdbLanes(target.path, LANES, [bulk]);
    // chDB implements the same Connection contract against its own copy of client-common's types
    const client = createClient({ connection: connection as unknown as NonNullable<Parameters<typeof createClient>[0]>['connection'], clickhouse_settings: BASE_SETTINGS });
    rawInserters.set(client, (params) => bulk.chdb.rawInsert(params));
    return client;
  }
  return createClient({
    url: target.url,
    username: config.clickhouse.user ?? 'default',
    password: config.clickhouse.password ?? '',
    clickhouse_settings: BASE_SETTINGS,
    request_timeout: 60_000,
  });
}
