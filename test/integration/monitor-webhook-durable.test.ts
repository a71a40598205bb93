import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALERT_KINDS } from '../../src/core/alert-kinds.ts';
import { startMonitor, type Monitor } from '../../src/monitor/monitor.ts';
import { redeliveryDelay } from '../../src/sinks/webhooks.ts';
import { testConfig } from '../harness/config.ts';
import { useTestStack } from '../harness/stack.ts';
import { waitFor } from '../harness/streams.ts';
import { shiftedClock } from '../support/clock.ts';

const ALERTS = 20;
const MIN = 60_000;

type Request = { path: string; id: string; status: number };

let monitor: Monitor | undefined;
let receiver: Server;
let base: string;
/** /flaky answers 503 or drops the connection while this is set */
let flakyDown = true;
const requests: Request[] = [];
const registry = new Registry();
const wallClock = shiftedClock();
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });

function startReceiver(): Promise<void> {
  receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const path = req.url ?? '';
      const id = decodeURIComponent(String(req.headers['x-tidemark-alert-id']));
      const down = path === '/short' || (path === '/flaky' && flakyDown);
      if (down && requests.filter((r) => r.path === path).length % 2 === 1) {
        requests.push({ path, id, status: 0 });
        req.socket.destroy();
        return;
      }
      const status = down ? 503 : 200;
      requests.push({ path, id, status });
      res.writeHead(status).end();
    });
  });
  return new Promise((resolve) => receiver.listen(0, '127.0.0.1', () => {
    base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    resolve();
  }));
}

const start = async () => {
  monitor = await startMonitor({ config: stack.config, js: stack.js, clickhouse: stack.ch.client, logger, registry, wallClock });
};

beforeAll(startReceiver);

const stack = useTestStack((database) => {
  const fast = { maxAttempts: 1, backoff: '10ms', redeliverAfter: '50ms', redeliverMax: '200ms' };
  return testConfig({
    clickhouse: { database },
    // a message the stopped monitor's client had pulled but not handled comes back after ack_wait
    nats: { ackWait: '10s' },
    monitor: {
      tick: '100ms',
      webhooks: [
        { name: 'flaky', url: `${base}/flaky`, kinds: ['DelayedEvent'], ...fast },
        { name: 'ok', url: `${base}/ok`, kinds: ['DelayedEvent'], ...fast },
        { name: 'short', url: `${base}/short`, kinds: ['DelayedEvent'], ...fast, retryFor: '2s' },
        { name: 'others', url: `${base}/others`, kinds: ['SagaParked', 'ReconDiscrepancies'], ...fast },
      ],
    },
  });
});

beforeAll(start);

afterAll(async () => {
  await monitor?.stop();
  await new Promise((r) => receiver?.close(r));
});

/** Each test publishes alerts of its own source and reads only those: either can run alone, or first. */
const idsOf = (source: string) => Array.from({ length: ALERTS }, (_, i) => `delayed:late:${source}:t${i}`);
const ids = idsOf('src-1');
const publishDelayed = async (source: string) => {
  for (const id of idsOf(source)) await stack.js.publish(`alerts.delayed.${source}`, JSON.stringify({ id, kind: 'DelayedEvent', source, sla: 'late', at: Date.now() }), { msgID: id });
};
const of = (path: string) => requests.filter((r) => r.path === path && (path === '/others' || ids.includes(r.id)));
const deliveredIds = (path: string) => of(path).filter((r) => r.status === 200).map((r) => r.id);
const pending = async (durable: string) => {
  const info = await stack.jsm.consumers.info('ALERTS', durable);
  return info.num_pending + info.num_ack_pending;
};

describe('durable webhook delivery', { timeout: 240_000 }, () => {
  it('a receiver down for 10 minutes (and a monitor restart meanwhile) gets every alert exactly once; others are not held up', async () => {
    await publishDelayed('src-1');
    await stack.js.publish('alerts.saga.pay', JSON.stringify({ id: 'saga-parked:p-1:1', kind: 'SagaParked', saga: 'pay', at: Date.now() }), { msgID: 'saga-parked:p-1:1' });
    await stack.js.publish('alerts.recon.bank', JSON.stringify({ id: 'recon-bank-2030-01-01', kind: 'ReconDiscrepancies', reconciliation: 'bank', at: Date.now() }), { msgID: 'recon-bank-2030-01-01' });

    // the working receivers get everything while /flaky fails
    await waitFor(() => deliveredIds('/ok').length === ALERTS && deliveredIds('/others').length === 2, 60_000, 'the healthy receivers');
    expect(deliveredIds('/ok').sort()).toEqual([...ids].sort());
    expect(deliveredIds('/others').sort()).toEqual(['recon-bank-2030-01-01', 'saga-parked:p-1:1']);
    await waitFor(() => new Set(of('/flaky').map((r) => r.id)).size === ALERTS && of('/flaky').length >= 3 * ALERTS, 60_000, 'rounds to the dead receiver');

    // a restart while it is down: the rounds go on from the durable
    await monitor!.stop();
    monitor = undefined;
    wallClock.shift(10 * MIN);
    const before = of('/flaky').length;
    await start();
    await waitFor(() => of('/flaky').length >= before + ALERTS, 60_000, 'rounds after the restart');
    expect(deliveredIds('/flaky')).toEqual([]);

    flakyDown = false;
    await waitFor(async () => deliveredIds('/flaky').length >= ALERTS && (await pending('webhook-flaky')) === 0, 60_000, 'the receiver to get every alert');
    // every message acked: nothing is sent again, so each alert reached it once
    expect(deliveredIds('/flaky').sort()).toEqual([...ids].sort());
    expect(await pending('webhook-ok')).toBe(0);
  });

  it('past retryFor, an alert is marked undelivered in alert_deliveries and counted, then acked', async () => {
    await publishDelayed('src-2');
    const mine = idsOf('src-2');
    const outcomes = async () => (await stack.ch.client.query({
      query: `SELECT webhook, outcome, count() AS n FROM ${stack.ch.db}.alert_deliveries FINAL WHERE alert_id IN {mine:Array(String)} AND webhook IN ('webhook-ok', 'webhook-short') GROUP BY webhook, outcome ORDER BY webhook, outcome`,
      query_params: { mine },
      format: 'JSONEachRow',
    })).json<{ webhook: string; outcome: string; n: string }>();
    const expected = [
      { webhook: 'webhook-ok', outcome: 'delivered', n: String(ALERTS) },
      { webhook: 'webhook-short', outcome: 'undelivered', n: String(ALERTS) },
    ];
    await waitFor(async () => JSON.stringify(await outcomes()) === JSON.stringify(expected), 60_000, 'delivered to ok, undelivered to short');
    expect(await outcomes()).toEqual(expected);
    await waitFor(async () => (await pending('webhook-short')) === 0, 60_000, 'the undelivered alerts to be acked');
    // every alert the short webhook ever had is now settled: the counter holds exactly the undelivered rows
    const undelivered = await (await stack.ch.client.query({ query: `SELECT count() AS n FROM ${stack.ch.db}.alert_deliveries FINAL WHERE outcome = 'undelivered'`, format: 'JSONEachRow' })).json<{ n: string }>();
    expect(Number(undelivered[0]!.n)).toBeGreaterThanOrEqual(ALERTS);
    expect(await registry.metrics()).toContain(`tidemark_webhook_deliveries_total{outcome="undelivered"} ${undelivered[0]!.n}`);
  });
});

describe('redelivery schedule', () => {
  it('doubles from redeliverAfter up to redeliverMax, ±20%, and never past what is left of retryFor', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 60_000 }), fc.integer({ min: 1, max: 3_600_000 }), fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 10 ** 9 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (after, max, round, left, random) => {
      let base = after;
      for (let r = 1; r < round && base < max; r++) base *= 2;
      base = Math.min(base, max);
      const delay = redeliveryDelay({ redeliverAfter: after, redeliverMax: max }, round, left, random);
      expect(delay).toBeLessThanOrEqual(Math.max(1, left));
      if (left >= base * 1.2 + 1) {
        expect(delay).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
        expect(delay).toBeLessThanOrEqual(Math.ceil(base * 1.2));
      }
    }));
  });

  it('every kind the product raises can be routed', () => {
    const parsed = testConfig({ monitor: { webhooks: [{ url: 'http://127.0.0.1:1/x', kinds: [...ALERT_KINDS] }] } });
    expect(parsed.monitor.webhooks[0]!.kinds).toEqual(expect.arrayContaining(['SagaParked', 'ReconDiscrepancies', 'ReportAmended', 'DeadlineMissed', 'MissingData', 'DelayedEvent', 'Resolved']));
  });
});
