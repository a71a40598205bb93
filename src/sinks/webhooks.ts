import { createHmac, timingSafeEqual } from 'node:crypto';
import type { AlertKind, WebhookConfig } from '../core/config.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { sleep } from '../core/time.ts';
import { globMatcher } from '../monitor/glob.ts';

/**
 * Alert webhooks: HTTP POST of the alert JSON exactly as it is on ALERTS.
 * Headers: `X-Tidemark-Alert-Id` (receivers dedupe on it: delivery is at least once),
 * `X-Tidemark-Timestamp` (ms) and `X-Tidemark-Signature: sha256=<hex>`, an HMAC-SHA256
 * over `<timestamp>.<body>` with the route's secret, so a receiver can check both
 * origin and freshness.
 */
export type WebhookRoute = {
  url: string;
  secret: string | undefined;
  accepts: (alert: { kind: string; source: string }) => boolean;
  maxAttempts: number;
  backoff: number;
  timeout: number;
};

export function webhookRoutes(configs: readonly WebhookConfig[], env: Record<string, string | undefined> = process.env): WebhookRoute[] {
  return configs.map((c, i) => {
    const secret = c.secretEnv ? env[c.secretEnv] : c.secret;
    if (c.secretEnv && !secret) throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `monitor.webhooks[${i}].secretEnv: environment variable ${c.secretEnv} is not set`);
    const kinds = new Set<string>(c.kinds satisfies AlertKind[]);
    const sources = c.sources.map(globMatcher);
    return {
      url: c.url,
      secret,
      accepts: (alert) => (kinds.size === 0 || kinds.has(alert.kind)) && (sources.length === 0 || sources.some((m) => m(alert.source))),
      maxAttempts: c.maxAttempts,
      backoff: c.backoff,
      timeout: c.timeout,
    };
  });
}

export const signBody = (secret: string, timestamp: string, body: string): string =>
  `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;

/** For receivers (and tests): constant-time check of a signature header. */
export function verifySignature(secret: string, timestamp: string, body: string, header: string | undefined): boolean {
  if (!header) return false;
  const expected = Buffer.from(signBody(secret, timestamp, body));
  const given = Buffer.from(header);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** 408, 429 and 5xx are worth another try; any other 4xx will not change by repeating it. */
const retryable = (status: number): boolean => status === 408 || status === 429 || status >= 500;

export type DeliveryReport = { attempts: number; status: number };

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
      'x-tidemark-alert-id': alert.id,
      'x-tidemark-timestamp': timestamp,
      'x-tidemark-attempt': String(attempt),
    };
    if (route.secret) headers['x-tidemark-signature'] = signBody(route.secret, timestamp, alert.body);
    try {
      const response = await fetch(route.url, { method: 'POST', headers, body: alert.body, signal: AbortSignal.timeout(route.timeout) });
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) return { attempts: attempt, status: response.status };
      reason = `HTTP ${response.status}`;
      if (!retryable(response.status)) {
        throw new TidemarkError(ErrorCodes.WEBHOOK_FAILED, `webhook ${route.url} refused alert ${alert.id}: ${reason}`);
      }
    } catch (err) {
      if (err instanceof TidemarkError) throw err;
      reason = (err as Error).message;
    }
  }
  throw new TidemarkError(ErrorCodes.WEBHOOK_FAILED, `webhook ${route.url} did not take alert ${alert.id} after ${route.maxAttempts} attempt(s): ${reason}`);
}
