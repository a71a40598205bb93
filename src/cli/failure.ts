import { inspect } from 'node:util';
import { ErrorCodes, isTidemarkError, TidemarkError } from '../core/errors.ts';
import { redact } from '../core/secrets.ts';

/** Exit codes: 2 for a refusal the message explains (config, environment), 1 for anything unexpected. */
export const EXIT_REFUSED = 2;
export const EXIT_UNEXPECTED = 1;

export type Failure = { message: string; exitCode: number; code?: string };

const PORT_SETTINGS = 'TIDEMARK_HTTP_PORT, TIDEMARK_CLICKHOUSE_HTTP_PORT or TIDEMARK_NATS_PORT (0 = any free port)';

/** Errors raised by libraries for things a user causes, turned into our coded ones. */
function recognise(err: Error): TidemarkError | undefined {
  const errno = err as NodeJS.ErrnoException & { port?: number; address?: string };
  const cause = err.cause as (NodeJS.ErrnoException & { port?: number; address?: string }) | undefined;
  const inUse = errno.code === 'EADDRINUSE' ? errno : cause?.code === 'EADDRINUSE' ? cause : undefined;
  if (inUse) {
    const where = inUse.port === undefined ? '' : `port ${inUse.port}${inUse.address ? ` on ${inUse.address}` : ''} `;
    return new TidemarkError(ErrorCodes.PORT_IN_USE, `${where || 'a port we need '}is already in use: stop what holds it (\`tidemark doctor\` says who), or set ${PORT_SETTINGS}`, { cause: err });
  }
  if (err.name === 'JetStreamNotEnabled' || /jetstream is not enabled/i.test(err.message)) {
    return new TidemarkError(ErrorCodes.JETSTREAM_DISABLED, 'the NATS server has JetStream disabled: enable it (nats-server -js) or unset NATS_URL so that `tidemark up` runs its own', { cause: err });
  }
  if (/Cannot lock file/i.test(err.message)) {
    return new TidemarkError(ErrorCodes.DATA_DIR_LOCKED, 'the embedded ClickHouse data directory is open in another process (chDB allows one): stop it, or set CLICKHOUSE_URL or TIDEMARK_DATA_DIR', { cause: err });
  }
  return undefined;
}

/** The one line (and exit code) a start-up failure prints; the detail is for --verbose. */
export function explain(err: unknown): Failure {
  const known = isTidemarkError(err) ? err : err instanceof Error ? recognise(err) : undefined;
  if (known) return { message: known.message, exitCode: EXIT_REFUSED, code: known.code };
  const text = err instanceof Error ? err.message || err.name : String(err);
  return { message: `${text} (unexpected: run with --verbose for the details)`, exitCode: EXIT_UNEXPECTED };
}

export const wantsDetail = (argv: string[], env: NodeJS.ProcessEnv): boolean =>
  argv.includes('--verbose') || ['debug', 'trace'].includes(env.LOG_LEVEL?.trim().toLowerCase() ?? '');

/** Writes the failure and exits; with `detail`, the stack and every cause follow the line. Neither may print a secret. */
export function reportFailure(err: unknown, detail: boolean): never {
  const failure = explain(err);
  process.stderr.write(`tidemark: ${redact(failure.message)}\n`);
  if (detail) process.stderr.write(`${redact(inspect(err, { depth: 6 }))}\n`);
  process.exit(failure.exitCode);
}
