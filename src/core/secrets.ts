import { readFileSync } from 'node:fs';
import { ErrorCodes, TidemarkError } from './errors.ts';

/** A secret kept in a file (a Docker or Kubernetes secret): its content without the trailing line break. */
export function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `${what}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}
