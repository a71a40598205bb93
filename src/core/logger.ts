import { pino, type Logger } from 'pino';

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

/**
 * JSON lines on stdout, one root logger per process so every role shares its
 * destination; a named logger is a child whose lines carry `role`.
 */
export function createLogger(name?: string): Logger {
  root ??= pino({ level: levelFromEnv(), timestamp: pino.stdTimeFunctions.isoTime });
  return name === undefined ? root : root.child({ role: name });
}
