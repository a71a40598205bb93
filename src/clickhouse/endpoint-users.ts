import type { Config } from '../core/config.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { readSecretFile, registerSecret } from '../core/secrets.ts';
import type { HttpUser } from './http-server/auth.ts';

/**
 * The one source of truth for who may log in to the embedded engine's HTTP endpoint: `tidemark up`
 * and `tidemark clickhouse` serve exactly these users, and every command that reaches the engine
 * through the endpoint logs in as one of them.
 *
 * - `clickhouse.serve.users` when set (each password inline, from `passwordEnv`, or `passwordFile`);
 * - else `CLICKHOUSE_USER` (default `default`) with `CLICKHOUSE_PASSWORD` when a password is set,
 *   the same credentials a process pointed at the endpoint by CLICKHOUSE_URL sends;
 * - else `default` without a password, which the endpoint serves on loopback only.
 */
export function endpointUsers(config: Config, env: Record<string, string | undefined> = process.env): HttpUser[] {
  const { serve, user, password } = config.clickhouse;
  if (serve.users.length > 0) {
    return serve.users.map((u, i) => ({ name: u.name, readonly: u.readonly, password: servedPassword(u, i, env) }));
  }
  return [{ name: user ?? 'default', password: password ?? '', readonly: false }];
}

type ServedUser = Config['clickhouse']['serve']['users'][number];

function servedPassword(user: ServedUser, index: number, env: Record<string, string | undefined>): string {
  const at = `clickhouse.serve.users[${index}]`;
  if (user.passwordEnv !== undefined) {
    const value = env[user.passwordEnv];
    if (!value) throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `${at}.passwordEnv: environment variable ${user.passwordEnv} is not set`);
    return value;
  }
  if (user.passwordFile !== undefined) {
    const password = readSecretFile(user.passwordFile, `${at}.passwordFile`);
    registerSecret(password);
    return password;
  }
  return user.password ?? '';
}

/**
 * The served user a Tidemark process logs in as: the one CLICKHOUSE_USER names, else the first
 * that may write (roles write), else the first.
 */
export function endpointLogin(config: Config, env: Record<string, string | undefined> = process.env): { username: string; password: string } {
  const users = endpointUsers(config, env);
  const chosen = users.find((u) => u.name === config.clickhouse.user) ?? users.find((u) => !u.readonly) ?? users[0]!;
  return { username: chosen.name, password: chosen.password ?? '' };
}
