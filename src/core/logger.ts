import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
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

export type LogFormat = 'json' | 'pretty';

/**
 * Readable lines for a person at a terminal, JSON lines for everything else (a file, a pipe, a
 * log shipper). TIDEMARK_LOG_FORMAT=json|pretty overrides the guess either way.
 */
export function logFormat(env: Record<string, string | undefined>, stdoutIsTty: boolean): LogFormat {
  const wanted = env.TIDEMARK_LOG_FORMAT?.trim().toLowerCase();
  if (wanted === 'json' || wanted === 'pretty') return wanted;
  if (wanted) throw new Error(`TIDEMARK_LOG_FORMAT "${wanted}" is not json or pretty`);
  return stdoutIsTty ? 'pretty' : 'json';
}

/** `[09:15:02.120] INFO: [processor] revision written {"report":"revenue"}`, in colour on a terminal. */
const prettyStdout = (): DestinationStream =>
  pretty({
    destination: 1,
    sync: true,
    colorize: Boolean(process.stdout.isTTY),
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,role',
    messageFormat: '{if role}[{role}] {end}{msg}',
    singleLine: true,
  });

/**
 * Every line passes through `redact` on its way out (before it is made pretty): known secrets
 * and user-info in URLs are hidden in messages, error stacks and nested fields alike, whoever logged them.
 */
function redactingStdout(format: LogFormat): DestinationStream {
  const out = format === 'pretty' ? prettyStdout() : pino.destination({ dest: 1, sync: true });
  return { write: (line: string) => out.write(redact(line)) };
}

/**
 * Log lines on stdout (readable on a terminal, JSON otherwise: logFormat), one root logger per
 * process so every role shares its destination; a named logger is a child whose lines carry `role`.
 */
export function createLogger(name?: string): Logger {
  root ??= pino({ level: levelFromEnv(), timestamp: pino.stdTimeFunctions.isoTime, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, redactingStdout(logFormat(process.env, Boolean(process.stdout.isTTY))));
  return name === undefined ? root : root.child({ role: name });
}
