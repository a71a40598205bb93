import { createHmac, timingSafeEqual } from 'node:crypto';
import type { AlertKind } from '../core/alert-kinds.ts';
import { webhookDurable, type WebhookConfig } from '../core/config.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { redactWebhookUrl, registerSecret } from '../core/secrets.ts';
import { sleep } from '../core/time.ts';
import { globMatcher } from '../core/glob.ts';

/**
 * Alert webhooks: HTTP POST of the alert JSON exactly as it is on ALERTS.
 * Headers: `X-Tidemark-Alert-Id` (receivers dedupe on it: delivery is at least once;
 * percent-encoded, see `headerSafe`), `X-Tidemark-Timestamp` (ms) and
 * `X-Tidemark-Signature: sha256=<hex>`, an HMAC-SHA256 over `<timestamp>.<body>` with the
 * route's secret, so a receiver can check both origin and freshness (`verifySignature`).
 * Redirects are not followed: a signed alert goes only to the URL configured.
 */
export type WebhookRoute = {
  /** its durable consumer on ALERTS */
  durable: string;
  url: string;
  secret: string | undefined;
  accepts: (alert: { kind: string; source: string }) => boolean;
  maxAttempts: number;
  backoff: number;
  timeout: number;
  retryFor: number;
  redeliverAfter: number;
  redeliverMax: number;
};

export function webhookRoutes(configs: readonly WebhookConfig[], env: Record<string, string | undefined> = process.env): WebhookRoute[] {
  return configs.map((c, i) => {
    const secret = c.secretEnv ? env[c.secretEnv] : c.secret;
    if (c.secretEnv && !secret) throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `monitor.webhooks[${i}].secretEnv: environment variable ${c.secretEnv} is not set`);
    registerSecret(c.url, redactWebhookUrl(c.url));
    registerSecret(secret);
    const kinds = new Set<string>(c.kinds satisfies AlertKind[]);
    const sources = c.sources.map(globMatcher);
    return {
      durable: webhookDurable(c),
      url: c.url,
      secret,
      accepts: (alert) => (kinds.size === 0 || kinds.has(alert.kind)) && (sources.length === 0 || sources.some((m) => m(alert.source))),
      maxAttempts: c.maxAttempts,
      backoff: c.backoff,
      timeout: c.timeout,
      retryFor: c.retryFor,
      redeliverAfter: c.redeliverAfter,
      redeliverMax: c.redeliverMax,
    };
  });
}

export const signBody = (secret: string, timestamp: string, body: string): string =>
  `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;

/** How far a signature's timestamp may be from the receiver's clock by default: a captured request replays for no longer. */
export const SIGNATURE_TOLERANCE_MS = 5 * 60_000;

/**
 * For receivers (and tests): constant-time check of a signature header, refused when the
 * timestamp is more than `toleranceMs` (default 5 min) away from `now`, so a captured delivery
 * cannot be replayed later.
 */
export function verifySignature(
  secret: string,
  timestamp: string,
  body: string,
  header: string | undefined,
  options: { toleranceMs?: number; now?: number } = {},
): boolean {
  if (!header || !/^\d{1,15}$/.test(timestamp)) return false;
  if (Math.abs((options.now ?? Date.now()) - Number(timestamp)) > (options.toleranceMs ?? SIGNATURE_TOLERANCE_MS)) return false;
  const expected = Buffer.from(signBody(secret, timestamp, body));
  const given = Buffer.from(header);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/**
 * A header value any HTTP stack takes: Node's fetch refuses characters outside Latin-1 (an alert
 * id for source `店舗-1` threw, and the alert was never delivered), and many servers mangle
 * anything outside printable ASCII. Printable ASCII other than `%` stays as it is, so existing ids
 * read the same; anything else is percent-encoded as UTF-8 (`decodeURIComponent` restores it).
 */
export const headerSafe = (value: string): string =>
  // a lone surrogate has no UTF-8 form (encodeURIComponent throws): it goes as U+FFFD
  value.replace(/[^\x21-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(/^[\ud800-\udfff]$/.test(c) ? '\ufffd' : c));

/** 408, 429 and 5xx are worth another try; any other 4xx will not change by repeating it. */
const retryable = (status: number): boolean => status === 408 || status === 429 || status >= 500;

export type DeliveryReport = { attempts: number; status: number };

/** The receiver answered with a status that repeating will not change (a 4xx other than 408 and 429, or a redirect). */
export class WebhookRefusedError extends TidemarkError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(ErrorCodes.WEBHOOK_FAILED, message);
  }
}

/**
 * The wait before the next delivery round after `round` failed ones: redeliverAfter,
 * doubled each round, capped at redeliverMax, ±20% (`random` in [0, 1)) so alerts that
 * failed together do not return in lockstep, and never past `deadlineLeftMs`, so the
 * last round falls when retryFor ends.
 */
export function redeliveryDelay(route: Pick<WebhookRoute, 'redeliverAfter' | 'redeliverMax'>, round: number, deadlineLeftMs: number, random: number): number {
  const base = Math.min(route.redeliverMax, route.redeliverAfter * 2 ** Math.min(Math.max(round - 1, 0), 40));
  return Math.max(1, Math.round(Math.min(base * (0.8 + random * 0.4), deadlineLeftMs)));
}

/**
 * POSTs with retries: waits backoff, 2×backoff, 4×… (±20% jitter, so many failed
 * deliveries do not return in lockstep). Throws WEBHOOK_FAILED when attempts run out
 * or the receiver refuses for good.
 */
export async function deliverWebhook(
  route: WebhookRoute,
  alert: { id: string; body: string },
  options: { signal?: AbortSignal; onRetry?: (attempt: number, reason: string) => void } = {},
): Promise<DeliveryReport> {
  let reason = '';
  for (let attempt = 1; attempt <= route.maxAttempts; attempt++) {
    if (attempt > 1) {
      options.onRetry?.(attempt, reason);
      const base = route.backoff * 2 ** (attempt - 2);
      await sleep(base * (0.8 + Math.random() * 0.4), options.signal);
      if (options.signal?.aborted) break;
    }
    const timestamp = String(Date.now());
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'tidemark-monitor',
      'x-tidemark-alert-id': headerSafe(alert.id),
      'x-tidemark-timestamp': timestamp,
      'x-tidemark-attempt': String(attempt),
    };
    if (route.secret) headers['x-tidemark-signature'] = signBody(route.secret, timestamp, alert.body);
    try {
      // A redirect is a failure, not a new destination: the signed alert would go somewhere not configured.
      const response = await fetch(route.url, { method: 'POST', headers, body: alert.body, redirect: 'manual', signal: AbortSignal.timeout(route.timeout) });
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) return { attempts: attempt, status: response.status };
      reason = response.status >= 300 && response.status < 400 ? `HTTP ${response.status} (redirects are not followed)` : `HTTP ${response.status}`;
      if (!retryable(response.status)) {
        throw new WebhookRefusedError(`webhook ${redactWebhookUrl(route.url)} refused alert ${alert.id}: ${reason}`, response.status);
      }
    } catch (err) {
      if (err instanceof TidemarkError) throw err;
      reason = (err as Error).message;
    }
  }
  throw new TidemarkError(ErrorCodes.WEBHOOK_FAILED, `webhook ${redactWebhookUrl(route.url)} did not take alert ${alert.id} after ${route.maxAttempts} attempt(s): ${reason}`);
}
