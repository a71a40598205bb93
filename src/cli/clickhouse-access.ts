import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { BASE_SETTINGS, openClickHouse } from '../clickhouse/client.ts';
import { endpointLogin } from '../clickhouse/endpoint-users.ts';
import { redactUserInfo } from '../core/secrets.ts';
import type { Config } from '../core/config.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { describeOwner, readDataDirOwner } from './data-dir-lock.ts';

/** `via` says where ClickHouse was reached, fit to print (no credentials). */
export type ToolClickHouse = { client: ClickHouseClient; close: () => Promise<void>; via: string };

type Credentials = { user?: string | undefined; password?: string | undefined };

const serverClient = (url: string, credentials: Credentials): ClickHouseClient =>
  createClient({ url, username: credentials.user ?? 'default', password: credentials.password ?? '', clickhouse_settings: BASE_SETTINGS, request_timeout: 60_000, log: { level: ClickHouseLogLevel.OFF } });

/** A ClickHouse server (or our endpoint) that must answer before anything is started on it. */
export async function reachableClickHouse(url: string, credentials: Credentials, unreachable: (reason: string) => string): Promise<ClickHouseClient> {
  const client = serverClient(url, credentials);
  const ping = await client.ping();
  if (!ping.success) {
    await client.close();
    const reason = ping.error.message || (ping.error as NodeJS.ErrnoException).code || ping.error.name;
    throw new TidemarkError(ErrorCodes.CLICKHOUSE_UNAVAILABLE, unreachable(redactUserInfo(reason)), { cause: ping.error });
  }
  // /ping asks for no login: a wrong password would otherwise surface later, as an unexplained failure
  const login = await client.command({ query: 'SELECT 1' }).then(() => undefined, (err: unknown) => err as Error & { code?: string });
  if (login === undefined) return client;
  await client.close();
  if (LOGIN_REFUSED.has(String(login.code))) {
    throw new TidemarkError(ErrorCodes.CLICKHOUSE_AUTH_FAILED, `ClickHouse at ${redactUserInfo(url)} refused the login as user "${credentials.user ?? 'default'}" (code ${login.code}): check CLICKHOUSE_USER and CLICKHOUSE_PASSWORD (or CLICKHOUSE_PASSWORD_FILE)`, { cause: login });
  }
  throw login;
}

/** ClickHouse's codes for a login it refuses: AUTHENTICATION_FAILED, UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD. */
const LOGIN_REFUSED = new Set(['516', '192', '193', '194']);

export const clickHouseUnreachable = (url: string) => (reason: string): string =>
  `cannot reach ClickHouse at ${redactUserInfo(url)} (${reason}): is it running? check CLICKHOUSE_URL, or unset it to use the embedded engine`;

/**
 * ClickHouse for a role or command that does not own the engine: CLICKHOUSE_URL; else the
 * endpoint of the `tidemark up` that owns the data directory (chDB locks its directory to one
 * process); else the embedded engine, opened here.
 */
export async function openClickHouseForTool(config: Config): Promise<ToolClickHouse> {
  const { url, user, password } = config.clickhouse;
  if (url) {
    const client = await reachableClickHouse(url, { user, password }, clickHouseUnreachable(url));
    return { client, close: () => client.close(), via: redactUserInfo(url) };
  }
  const owner = readDataDirOwner(config.dataDir);
  if (owner?.sql) {
    const sql = owner.sql;
    const { username, password: loginPassword } = endpointLogin(config);
    const client = await reachableClickHouse(sql, { user: username, password: loginPassword }, (reason) =>
      `the embedded ClickHouse of ${describeOwner(owner)} at ${sql} does not answer (${reason}): is it still starting or stuck? or set CLICKHOUSE_URL`);
    return { client, close: () => client.close(), via: sql };
  }
  if (owner) {
    throw new TidemarkError(ErrorCodes.DATA_DIR_LOCKED, `the embedded ClickHouse in ${config.dataDir} belongs to ${describeOwner(owner)}, which does not serve it over HTTP (yet): wait for it to finish starting, or set CLICKHOUSE_URL`);
  }
  const client = openClickHouse(config);
  return { client, close: () => client.close(), via: 'embedded' };
}

/**
 * Where a standalone gateway's page reads figures: CLICKHOUSE_URL, else the endpoint of the
 * `tidemark up` owning the data directory. Never the embedded engine: opening chDB here would
 * lock the data directory against the processor. Not pinged: ClickHouse may come up later.
 */
export function clickHouseForPage(config: Config): { client: ClickHouseClient } | { unavailable: string } {
  const { url, user, password } = config.clickhouse;
  if (url) return { client: serverClient(url, { user, password }) };
  const owner = readDataDirOwner(config.dataDir);
  if (owner?.sql) {
    const { username, password: loginPassword } = endpointLogin(config);
    return { client: serverClient(owner.sql, { user: username, password: loginPassword }) };
  }
  return { unavailable: 'this gateway has no ClickHouse to read from: set CLICKHOUSE_URL (or run `tidemark up` in this directory)' };
}
