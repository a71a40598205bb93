import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { BASE_SETTINGS, openClickHouse } from '../clickhouse/client.ts';
import { endpointLogin } from '../clickhouse/endpoint-users.ts';
import { redactUserInfo } from '../core/secrets.ts';
import type { Config } from '../core/config.ts';

/** `via` says where ClickHouse was reached, fit to print (no credentials). */
export type ToolClickHouse = { client: ClickHouseClient; close: () => Promise<void>; via: string };

/** Where `tidemark up` serves its embedded engine. */
export const embeddedEndpointUrl = (config: Config): string => `http://${config.clickhouse.serve.host === '0.0.0.0' ? '127.0.0.1' : config.clickhouse.serve.host}:${config.clickhouse.serve.port}`;

/**
 * ClickHouse for a role or command that does not own the engine. chDB locks its data
 * directory to one process, so while `tidemark up` runs, the embedded engine is
 * reached through the HTTP endpoint it serves; otherwise the command opens it itself.
 */
export async function openClickHouseForTool(config: Config): Promise<ToolClickHouse> {
  if (!config.clickhouse.url) {
    const url = embeddedEndpointUrl(config);
    const viaEndpoint = createClient({ url, ...endpointLogin(config), clickhouse_settings: BASE_SETTINGS, request_timeout: 60_000, log: { level: ClickHouseLogLevel.OFF } });
    const ping = await viaEndpoint.ping();
    if (ping.success) return { client: viaEndpoint, close: () => viaEndpoint.close(), via: url };
    await viaEndpoint.close();
  }
  const client = openClickHouse(config);
  return { client, close: () => client.close(), via: config.clickhouse.url ? redactUserInfo(config.clickhouse.url) : 'embedded' };
}
