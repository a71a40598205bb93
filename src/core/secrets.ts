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

/** `scheme://user:password@host` (or `scheme://token@host`): everything between `//` and the last `@` before the host. */
const USER_INFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@'"`<>]+@/gi;

/** A URL, or a comma-separated list of them (NATS_URL), with any user-info replaced by `***`. */
export const redactUserInfo = (text: string): string => text.replace(USER_INFO, '$1***@');

/**
 * A webhook URL as it may be shown: scheme and host only. Receivers often put the secret in the
 * path or query (Slack, Teams and most chat webhooks do).
 */
export function redactWebhookUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const hidden = parsed.pathname !== '/' || parsed.search !== '' || parsed.hash !== '';
    return `${parsed.protocol}//${parsed.host}${hidden ? '/…' : '/'}`;
  } catch {
    return '(an invalid URL)';
  }
}

/** Secret values this process knows (passwords, tokens, webhook URLs and keys) and how each is shown instead. */
const known = new Map<string, string>();

/** Shorter values are not treated as secrets: replacing every "a" in the logs would hide nothing and mangle everything. */
const MIN_SECRET_LENGTH = 4;

/** Remembers secrets so that `redact` hides them wherever they turn up (a log line, an error message). */
export function registerSecret(value: string | undefined, shownAs = '[redacted]'): void {
  if (value === undefined || value.length < MIN_SECRET_LENGTH) return;
  known.set(value, shownAs);
  // As it appears inside a JSON log line or a URL.
  known.set(JSON.stringify(value).slice(1, -1), shownAs);
  known.set(encodeURIComponent(value), shownAs);
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
let pattern: { size: number; re: RegExp | undefined } = { size: 0, re: undefined };

function knownPattern(): RegExp | undefined {
  if (pattern.size !== known.size) {
    // Longest first, so a URL that contains a shorter secret is replaced whole.
    const values = [...known.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
    pattern = { size: known.size, re: values.length > 0 ? new RegExp(values.join('|'), 'g') : undefined };
  }
  return pattern.re;
}

/** Text that may be printed: known secrets replaced, user-info in URLs hidden. */
export function redact(text: string): string {
  const re = knownPattern();
  const withoutKnown = re ? text.replace(re, (match) => known.get(match) ?? '[redacted]') : text;
  return redactUserInfo(withoutKnown);
}
