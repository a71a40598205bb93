import { pino, type DestinationStream, type Logger } from 'pino';
import { redact } from './secrets.ts';

export type { Logger };

let root: Logger | undefined;

function levelFromEnv(): string {
  const level = process.env.LOG_LEVEL?.trim().toLowerCase() || 'info';
  // pino's own error ("unknown level") does not say where the bad value came from
  if (level !== 'silent' && !(level in pino.levels.values)) {
    throw new Error(`LOG_LEVEL "${level}" is not one of ${[...Object.keys(pino.levels.values), 'silent'].join(', ')}`);
  }
  return level;
}

/** Field names whose values never reach a log line, wherever they sit in the logged object. */
const SECRET_FIELDS = ['password', 'pass', 'token', 'secret', 'authorization', 'cookie', 'x-clickhouse-key'];
const REDACT_PATHS = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`, `headers["${f}"]`, `*.headers["${f}"]`]);

/**
 * Every line passes through `redact` on its way out: known secrets and user-info in URLs are
 * hidden in messages, error stacks and nested fields alike, whoever logged them.
 */
function redactingStdout(): DestinationStream {
  const out = pino.destination({ dest: 1, sync: true });
  return { write: (line: string) => out.write(redact(line)) };
}

/**
 * JSON lines on stdout, one root logger per process so every role shares its
 * destination; a named logger is a child whose lines carry `role`.
 */
export function createLogger(name?: string): Logger {
  root ??= pino({ level: levelFromEnv(), timestamp: pino.stdTimeFunctions.isoTime, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, redactingStdout());
  return name === undefined ? root : root.child({ role: name });
}
