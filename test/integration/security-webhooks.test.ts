import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTidemarkError } from '../../src/core/errors.ts';
import { encodeEvent, eventSubject, type TidemarkEvent } from '../../src/core/envelope.ts';
import type { Alert } from '../../src/monitor/alerts.ts';
import { startMonitor, type Monitor } from '../../src/monitor/monitor.ts';
import { deliverWebhook, headerSafe, signBody, verifySignature, webhookRoutes } from '../../src/sinks/webhooks.ts';
import { testConfig } from '../harness/config.ts';
import { useTestStack } from '../harness/stack.ts';
import { waitFor } from '../harness/streams.ts';
import { shiftedClock } from '../support/clock.ts';

/** Issue 20, point 6: webhooks deliver for any source name, never follow a redirect, and a stale signature is refused. */

type Hit = { path: string; headers: IncomingHttpHeaders; body: string };

let receiver: Server;
let base: string;
const hits: Hit[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      hits.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      if (path.startsWith('/moved')) res.writeHead(307, { location: `${base}/elsewhere` }).end();
      else if (path.startsWith('/gone')) res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data' }).end();
      else res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', () => resolve()));
  base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => receiver?.close(r));
});

const routeTo = (path: string, extra: Record<string, unknown> = {}) =>
  webhookRoutes(testConfig({ monitor: { webhooks: [{ url: `${base}${path}`, backoff: '10ms', maxAttempts: 3, ...extra }] } }).monitor.webhooks)[0]!;

describe('header values', () => {
  it('keep printable ASCII ids as they are and percent-encode anything else; decodeURIComponent restores the id', () => {
    expect(headerSafe('missing:feed:feed-1:every:2030-05-01T00:01:00.000Z')).toBe('missing:feed:feed-1:every:2030-05-01T00:01:00.000Z');
    expect(headerSafe('delayed:late:店舗-1:x')).toBe('delayed:late:%E5%BA%97%E8%88%97-1:x');
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (id) => {
        const value = headerSafe(id);
        expect(value).toMatch(/^[\x21-\x7e]*$/);
        expect(decodeURIComponent(value)).toBe(id);
      }),
    );
    // A lone surrogate cannot be UTF-8: it becomes U+FFFD rather than an exception.
    expect(decodeURIComponent(headerSafe('a\ud800b'))).toBe('a\ufffdb');
  });

  it('deliver an alert whose id holds CJK, spaces and line breaks', async () => {
    const id = 'delayed:late:店舗-1:2030 05\r\n01:0';
    expect(await deliverWebhook(routeTo('/ok'), { id, body: JSON.stringify({ id }) })).toEqual({ attempts: 1, status: 200 });
    const hit = hits.filter((h) => h.path === '/ok').at(-1)!;
    expect(decodeURIComponent(String(hit.headers['x-tidemark-alert-id']))).toBe(id);
  });
});

describe('redirects', () => {
  it('are not followed: a 3xx is a failure, once, and nothing reaches the target', async () => {
    for (const path of ['/moved', '/gone']) {
      const error = await deliverWebhook(routeTo(path), { id: 'r-1', body: '{}' }).catch((err: unknown) => err);
      expect(isTidemarkError(error, 'WEBHOOK_FAILED')).toBe(true);
      expect((error as Error).message).toMatch(/HTTP 30[27] \(redirects are not followed\)/);
      expect(hits.filter((h) => h.path === path)).toHaveLength(1);
    }
    expect(hits.filter((h) => h.path === '/elsewhere')).toEqual([]);
  });
});

describe('webhook errors', () => {
  it('show the scheme and host of the URL, never its path or query', async () => {
    const error = await deliverWebhook(routeTo('/moved/T000/B000/XXXXsecretXXXX?token=abc123'), { id: 'r-2', body: '{}' }).catch((err: unknown) => err);
    expect((error as Error).message).toContain(`webhook ${base}/… refused`);
    expect((error as Error).message).not.toMatch(/XXXXsecretXXXX|abc123/);
  });
});

describe('signatures', () => {
  const body = '{"id":"a"}';
  const now = Date.parse('2030-05-01T12:00:00Z');
  const at = (offsetMs: number) => String(now + offsetMs);

  it('are accepted within the tolerance (default 5 minutes) and refused outside it, early or late', () => {
    for (const offset of [0, -299_000, 299_000]) expect([offset, verifySignature('k', at(offset), body, signBody('k', at(offset), body), { now })]).toEqual([offset, true]);
    for (const offset of [-301_000, 301_000, -86_400_000]) expect([offset, verifySignature('k', at(offset), body, signBody('k', at(offset), body), { now })]).toEqual([offset, false]);
    expect(verifySignature('k', at(-600_000), body, signBody('k', at(-600_000), body), { now, toleranceMs: 900_000 })).toBe(true);
    expect(verifySignature('k', 'soon', body, signBody('k', 'soon', body), { now })).toBe(false);
  });

  it('of a real delivery verify at the receiver', async () => {
    await deliverWebhook(routeTo('/signed', { secret: 'hook-secret' }), { id: 's-1', body });
    const hit = hits.filter((h) => h.path === '/signed').at(-1)!;
    expect(verifySignature('hook-secret', String(hit.headers['x-tidemark-timestamp']), hit.body, String(hit.headers['x-tidemark-signature']))).toBe(true);
    // The same request replayed ten minutes later is refused.
    expect(verifySignature('hook-secret', String(hit.headers['x-tidemark-timestamp']), hit.body, String(hit.headers['x-tidemark-signature']), { now: Date.now() + 600_000 })).toBe(false);
  });
});

describe('an alert for source 店舗-1, end to end', () => {
  const MIN = 60_000;
  const T0 = Date.parse('2030-05-01T00:00:00Z');
  let monitor: Monitor;
  const clock = shiftedClock();
  const stack = useTestStack((database) => testConfig({
    clickhouse: { database },
    slas: [{ name: 'late', source: '店舗-*', maxDelay: '1m' }],
    monitor: { bucket: '1m', grace: '1s', tick: '100ms', webhooks: [{ url: `${base}/cjk`, secret: 'cjk-secret', backoff: '50ms' }] },
  }));

  beforeAll(async () => {
    clock.jumpTo(T0);
    monitor = await startMonitor({ config: stack.config, js: stack.js, clickhouse: stack.ch.client, logger: pino({ level: 'silent' }), clock, registry: new Registry() });
  });

  afterAll(async () => {
    await monitor?.stop();
  });

  it('is delivered, signed, with the id percent-encoded in the header and as is in the body', async () => {
    clock.jumpTo(T0 + 2 * MIN + 2_000);
    for (let i = 0; i < 3; i++) {
      const late: TidemarkEvent = { id: `店舗-1-${i}`, type: 'sale', source: '店舗-1', key: null, occurredAt: T0 - 3 * MIN + i, receivedAt: T0 + 2 * MIN + i, data: {}, seq: i };
      stack.nc.publish(eventSubject(late), encodeEvent(late));
    }
    await stack.nc.flush();
    await waitFor(async () => (await stack.jsm.consumers.info('EVENTS', 'monitor')).delivered.stream_seq === 3, 60_000, 'the monitor to read the late events');
    clock.jumpTo(T0 + 3 * MIN + 2_000);
    const hit = await waitFor(() => hits.find((h) => h.path === '/cjk'), 60_000, 'the webhook for 店舗-1');
    const alert = JSON.parse(hit.body) as Alert;
    expect(alert).toMatchObject({ kind: 'DelayedEvent', source: '店舗-1', count: 3 });
    expect(decodeURIComponent(String(hit.headers['x-tidemark-alert-id']))).toBe(alert.id);
    expect(String(hit.headers['x-tidemark-alert-id'])).toMatch(/^[\x21-\x7e]+$/);
    expect(verifySignature('cjk-secret', String(hit.headers['x-tidemark-timestamp']), hit.body, String(hit.headers['x-tidemark-signature']))).toBe(true);
  });
});
