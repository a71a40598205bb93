import { InvalidArgumentError, Option, type Command } from 'commander';
import type { Config } from '../../core/config.ts';
import { ErrorCodes, TidemarkError } from '../../core/errors.ts';
import { createLogger } from '../../core/logger.ts';
import { redactUserInfo } from '../../core/secrets.ts';
import { ClickHouseServerError, ServerErrorCodes } from '../../clickhouse/http-server/errors.ts';
import { serveEmbeddedClickHouse } from '../../clickhouse/http-server/server.ts';
import { acquireDataDir } from '../data-dir-lock.ts';
import { onShutdown } from '../runtime.ts';

type Options = { host?: string; port?: number };

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

/** Passwords on the command line show in `ps` and shell history: point at the places that keep them. */
const noPasswordsInArgv = (flag: string) => (): never => {
  // Not InvalidArgumentError: commander would print the argument, password and all.
  throw new TidemarkError(
    ErrorCodes.CONFIG_INVALID,
    `${flag} is gone: a password on the command line shows in ps and shell history. Serve users from the config (clickhouse.serve.users with passwordEnv or passwordFile), or set CLICKHOUSE_USER and CLICKHOUSE_PASSWORD (or CLICKHOUSE_PASSWORD_FILE)`,
  );
};

export function register(program: Command, load: () => Promise<Config>): void {
  program
    .command('clickhouse')
    .description("serve the embedded ClickHouse (chDB) over ClickHouse's HTTP interface, so other processes can use it with CLICKHOUSE_URL")
    .option('--host <address>', 'address to listen on (default clickhouse.serve.host, 127.0.0.1); anything but loopback needs a password on every user')
    .option('--port <port>', 'port to listen on, 0 picks a free one (default clickhouse.serve.port, 8123)', port)
    .addOption(new Option('--user <name:password>').hideHelp().argParser(noPasswordsInArgv('--user')))
    .addOption(new Option('--readonly-user <name:password>').hideHelp().argParser(noPasswordsInArgv('--readonly-user')))
    .action(async (opts: Options) => {
      const config = await load();
      // The users come from endpointUsers (config or CLICKHOUSE_USER/CLICKHOUSE_PASSWORD), the same ones every command logs in as.
      // chDB allows one process per data directory: claim it first, so a second owner gets one clear line
      const lock = config.clickhouse.url ? undefined : acquireDataDir(config.dataDir, 'clickhouse');
      const server = await serveEmbeddedClickHouse(config, { host: opts.host ?? config.clickhouse.serve.host, port: opts.port ?? config.clickhouse.serve.port }).catch((err: unknown) => {
        throw asCliError(err);
      });
      if (!server) {
        throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `CLICKHOUSE_URL is set (${redactUserInfo(config.clickhouse.url ?? '')}): ClickHouse is already a server, there is no embedded engine to serve`);
      }
      lock?.update({ sql: server.url });
      process.stdout.write(`ClickHouse (embedded chDB, data in ${server.path}) is serving on ${server.url}\n  export CLICKHOUSE_URL=${server.url}\n`);
      onShutdown(createLogger('clickhouse'), () => server.close());
    });
}
