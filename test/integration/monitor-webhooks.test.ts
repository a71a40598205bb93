import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTidemarkError } from '../../src/core/errors.ts';
import { encodeEvent, eventSubject, type TidemarkEvent } from '../../src/core/envelope.ts';
import { shiftedClock } from '../support/clock.ts';
import type { Alert } from '../../src/monitor/alerts.ts';
import { startMonitor, type Monitor } from '../../src/monitor/monitor.ts';
import { deliverWebhook, verifySignature, webhookRoutes } from '../../src/sinks/webhooks.ts';
import { closeTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { startTestStack, type TestStack } from '../harness/stack.ts';
import { waitFor } from '../harness/streams.ts';

const MIN = 60_000;
const T0 = Date.parse('2030-05-01T00:00:00Z');
const SECRETS: Record<string, string> = { '/a': 's3cret', '/b': 'b-secret' };

type Received = { path: string; attempt: number; id: string; signed: boolean; alert: Alert };

let stack: TestStack;
let { ch, nc, js, jsm, config } = {} as TestStack;
let monitor: Monitor;
let receiver: Server;
let base: string;
const received: Received[] = [];
const registry = new Registry();
const clock = shiftedClock();
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });

/** /a fails twice with 503 before taking an alert; /b takes everything; /c refuses for good (400); /d is always down. */
function startReceiver(): Promise<void> {
  const attempts = new Map<string, number>();
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const path = req.url ?? '';
      const id = String(req.headers['x-tidemark-alert-id']);
      const secret = SECRETS[path];
      const signed = secret !== undefined && verifySignature(secret, String(req.headers['x-tidemark-timestamp']), body, req.headers['x-tidemark-signature'] as string | undefined);
      received.push({ path, attempt: Number(req.headers['x-tidemark-attempt']), id, signed, alert: JSON.parse(body) as Alert });
      const n = (attempts.get(`${path} ${id}`) ?? 0) + 1;
      attempts.set(`${path} ${id}`, n);
      const status = path === '/a' ? (n <= 2 ? 503 : 200) : path === '/b' ? 200 : path === '/c' ? 400 : 503;
      res.writeHead(status).end();
    });
  });
  return new Promise((resolve) => receiver.listen(0, '127.0.0.1', () => {
    base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    resolve();
  }));
}

beforeAll(async () => {
  await startReceiver();
  stack = await startTestStack((database) => testConfig({
    clickhouse: { database },
    slas: [
      { name: 'feed', source: 'feed-1', type: 'tick', expect: { every: '1m' } },
      { name: 'other', source: 'other-1', type: 'tick', expect: { every: '1m' } },
      { name: 'late', source: 'x-*', maxDelay: '1m' },
    ],
    monitor: {
      bucket: '1m',
      grace: '1s',
      tick: '100ms',
      webhooks: [
        { url: `${base}/a`, secret: 's3cret', kinds: ['MissingData'], sources: ['feed-*'], backoff: '50ms', maxAttempts: 5 },
        { url: `${base}/b`, secretEnv: 'TEST_HOOK_SECRET', kinds: ['DelayedEvent'], backoff: '50ms' },
        { url: `${base}/c`, kinds: ['MissingData'], sources: ['other-*'], backoff: '50ms', maxAttempts: 3 },
      ],
    },
  }));
  ({ ch, nc, js, jsm, config } = stack);
  clock.jumpTo(T0);
  monitor = await startMonitor({ config, js, clickhouse: ch.client, logger, clock, registry, env: { TEST_HOOK_SECRET: 'b-secret' } });
});

afterAll(async () => {
  await monitor?.stop();
  await stack?.dispose();
  await closeTestClickHouse();
  await new Promise((r) => receiver?.close(r));
});

const event = (source: string, occurredAt: number, receivedAt: number, i: number): TidemarkEvent =>
  ({ id: `${source}-${i}`, type: 'sale', source, key: null, occurredAt, receivedAt, data: {}, seq: i });
const requests = (path: string) => received.filter((r) => r.path === path);

describe('alert webhooks', () => {
  it('POSTs each alert to the routes whose kind and source filters take it, signed, retrying with back-off', async () => {
    clock.jumpTo(T0 + 2 * MIN + 2_000);
    for (let i = 0; i < 5; i++) {
      const late = event('x-1', T0 + 2 * MIN - 5 * MIN + i, T0 + 2 * MIN + i, i);
      nc.publish(eventSubject(late), encodeEvent(late));
    }
    await nc.flush();
    await waitFor(async () => {
      const info = await jsm.consumers.info('EVENTS', 'monitor');
      return info.delivered.stream_seq === 5 && info.num_ack_pending === 0;
    }, 60_000, 'the monitor to read the late events');
    clock.jumpTo(T0 + 3 * MIN + 2_000);
    // each alert's delivery has ended (delivered, or failed for good) before the requests are counted: no attempt can follow
    const outcomes = ['delivered"} 2', 'retried"} 2', 'failed"} 1'].map((o) => `tidemark_webhook_deliveries_total{outcome="${o}`);
    await waitFor(async () => {
      const text = await registry.metrics();
      return outcomes.every((line) => text.includes(line));
    }, 60_000, 'every webhook delivery to end');

    const a = requests('/a');
    expect(a.map((r) => [r.attempt, r.id, r.signed])).toEqual([1, 2, 3].map((n) => [n, `missing:feed:feed-1:every:${new Date(T0 + MIN).toISOString()}`, true]));
    expect(a[0]!.alert).toMatchObject({ kind: 'MissingData', source: 'feed-1', at: T0 + 2 * MIN });

    const b = requests('/b');
    expect(b.map((r) => [r.attempt, r.alert.kind, r.alert.source, r.signed])).toEqual([[1, 'DelayedEvent', 'x-1', true]]);
    expect(b[0]!.alert).toMatchObject({ count: 5, at: T0 + 2 * MIN });

    // a permanent refusal is not retried
    expect(requests('/c').map((r) => [r.attempt, r.alert.kind, r.alert.source])).toEqual([[1, 'MissingData', 'other-1']]);

    const text = await registry.metrics();
    expect(text).toContain('tidemark_webhook_deliveries_total{outcome="delivered"} 2');
    expect(text).toContain('tidemark_webhook_deliveries_total{outcome="retried"} 2');
    expect(text).toContain('tidemark_webhook_deliveries_total{outcome="failed"} 1');
  });

  it('files every alert in ClickHouse whatever the webhooks did', async () => {
    const filed = async () => (await ch.client.query({ query: `SELECT kind, source FROM ${ch.db}.alerts FINAL ORDER BY kind, source`, format: 'JSONEachRow' })).json();
    // the alert sink files them beside the webhooks, not before them
    await waitFor(async () => (await filed()).length >= 3, 60_000, 'the alerts filed');
    expect(await filed()).toEqual([
      { kind: 'DelayedEvent', source: 'x-1' },
      { kind: 'MissingData', source: 'feed-1' },
      { kind: 'MissingData', source: 'other-1' },
    ]);
  });

  it('gives up with WEBHOOK_FAILED after the configured attempts', async () => {
    const [route] = webhookRoutes(testConfig({ monitor: { webhooks: [{ url: `${base}/d`, backoff: '10ms', maxAttempts: 3 }] } }).monitor.webhooks);
    const error = await deliverWebhook(route!, { id: 'x', body: '{"id":"x"}' }).catch((err: unknown) => err);
    expect(isTidemarkError(error, 'WEBHOOK_FAILED')).toBe(true);
    expect((error as Error).message).toMatch(/after 3 attempt\(s\): HTTP 503/);
    expect(requests('/d').map((r) => r.attempt)).toEqual([1, 2, 3]);
  });
});
