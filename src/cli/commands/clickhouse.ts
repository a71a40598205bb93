import { InvalidArgumentError, type Command } from 'commander';
import type { Config } from '../../core/config.ts';
import { ErrorCodes, TidemarkError } from '../../core/errors.ts';
import { createLogger } from '../../core/logger.ts';
import type { HttpUser } from '../../clickhouse/http-server/auth.ts';
import { ClickHouseServerError, ServerErrorCodes } from '../../clickhouse/http-server/errors.ts';
import { serveEmbeddedClickHouse } from '../../clickhouse/http-server/server.ts';
import { acquireDataDir } from '../data-dir-lock.ts';
import { onShutdown } from '../runtime.ts';

type Options = { host?: string; port?: number; user: HttpUser[]; readonlyUser: HttpUser[] };

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port is an integer from 0 to 65535');
  return n;
}

/** Start-up refusals become the CLI's own errors, printed as one line. */
function asCliError(err: unknown): unknown {
  if (!(err instanceof ClickHouseServerError)) return err;
  const misconfigured = err.code === ServerErrorCodes.INSECURE_BIND || err.code === ServerErrorCodes.INVALID_USERS;
  return new TidemarkError(misconfigured ? ErrorCodes.CONFIG_INVALID : ErrorCodes.CLICKHOUSE_UNAVAILABLE, err.message, { cause: err });
}

/** `name:password` (or just `name`, for no password), collected across repeated flags. */
const user = (readonly: boolean) => (value: string, previous: HttpUser[]): HttpUser[] => {
  const colon = value.indexOf(':');
  const name = colon < 0 ? value : value.slice(0, colon);
  if (!name) throw new InvalidArgumentError('expected name:password');
  return [...previous, { name, readonly, ...(colon < 0 ? {} : { password: value.slice(colon + 1) }) }];
};

export function register(program: Command, load: () => Promise<Config>): void {
  program
    .command('clickhouse')
    .description("serve the embedded ClickHouse (chDB) over ClickHouse's HTTP interface, so other processes can use it with CLICKHOUSE_URL")
    .option('--host <address>', 'address to listen on (default clickhouse.serve.host, 127.0.0.1); anything but loopback needs a password on every user')
    .option('--port <port>', 'port to listen on, 0 picks a free one (default clickhouse.serve.port, 8123)', port)
    .option('--user <name:password>', 'a user (repeatable); default: CLICKHOUSE_USER/CLICKHOUSE_PASSWORD when a password is set, else "default" with no password', user(false), [])
    .option('--readonly-user <name:password>', 'a user that may only read: SELECT, SHOW, DESCRIBE, EXISTS, EXPLAIN, WITH (repeatable)', user(true), [])
    .action(async (opts: Options) => {
      const config = await load();
      const users = [...opts.user, ...opts.readonlyUser, ...config.clickhouse.serve.users];
      // chDB allows one process per data directory: claim it first, so a second owner gets one clear line
      const lock = config.clickhouse.url ? undefined : acquireDataDir(config.dataDir, 'clickhouse');
      const server = await serveEmbeddedClickHouse(config, { host: opts.host ?? config.clickhouse.serve.host, port: opts.port ?? config.clickhouse.serve.port, ...(users.length > 0 ? { users } : {}) }).catch((err: unknown) => {
        throw asCliError(err);
      });
      if (!server) {
        throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `CLICKHOUSE_URL is set (${config.clickhouse.url}): ClickHouse is already a server, there is no embedded engine to serve`);
      }
      lock?.update({ sql: server.url });
      process.stdout.write(`ClickHouse (embedded chDB, data in ${server.path}) is serving on ${server.url}\n  export CLICKHOUSE_URL=${server.url}\n`);
      onShutdown(createLogger('clickhouse'), () => server.close());
    });
}
