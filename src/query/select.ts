import type { ClickHouseClient } from '@clickhouse/client';
import { BASE_SETTINGS } from '../clickhouse/client.ts';

/** One parameterised read, rows as JSON objects (64-bit integers arrive as strings: BASE_SETTINGS). */
export async function selectRows<T>(client: ClickHouseClient, query: string, params: Record<string, unknown> = {}): Promise<T[]> {
  const result = await client.query({ query, query_params: params, format: 'JSONEachRow', clickhouse_settings: BASE_SETTINGS });
  return result.json<T>();
}
