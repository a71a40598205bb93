import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistry } from '../src/core/metrics.ts';
import { startHttpGateway, type HttpGateway } from '../src/ingest/http/server.ts';
import { startMonitor, type Monitor } from '../src/monitor/monitor.ts';
import { businessDay } from '../src/processors/logic/business-day.ts';
import { startProcessor, type Processor } from '../src/processors/processor.ts';
import { publishedRevisions } from '../src/query/revisions.ts';
import { closeTestClickHouse, openTestClickHouse, type TestClickHouse } from './harness/clickhouse.ts';
import { testConfig } from './harness/config.ts';
import { startTestIngest, type TestIngest } from './harness/ingest.ts';
import { waitFor } from './harness/streams.ts';
import { launchChromium } from './support/browser.ts';

const ARTIFACTS = join(process.cwd(), 'test-artifacts');
const TZ = 'Asia/Taipei';
const report = {
  name: 'revenue',
  types: ['sale'],
  timeZone: TZ,
  groupBy: ['source'],
  measures: { amount: { fn: 'sum', field: 'amount' }, orders: { fn: 'count' } },
  coalesce: '200ms',
  windows: [{ size: '1h', slide: '5m' }],
};
const twoDaysAgo = Date.now() - 2 * 86_400_000;
const day = businessDay(twoDaysAgo, TZ);
const today = businessDay(Date.now(), TZ);

let ch: TestClickHouse;
let ingest: TestIngest;
let processor: Processor;
let monitor: Monitor;
let http: HttpGateway;
let browser: Browser;
let page: Page;
const consoleErrors: string[] = [];

const publish = (source: string, id: string, occurredAt: number, amount: string) =>
  ingest.nc.publish(`ingest.${source}.sale`, JSON.stringify({ id, occurredAt: new Date(occurredAt).toISOString(), data: { amount } }));

const revisionsOf = async (source: string) =>
  (await publishedRevisions(ch.client, ch.db, 'revenue', day, { history: true })).filter((r) => r.group.source === source);

beforeAll(async () => {
  ch = await openTestClickHouse();
  const config = testConfig({
    reports: [report],
    clickhouse: { database: ch.db },
    http: { port: 0 },
    monitor: { groupWait: '200ms', tick: '200ms' },
    slas: [{ name: 'delay', maxDelay: '1h' }],
  });
  ingest = await startTestIngest(config);
  const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
  processor = await startProcessor({ config, js: ingest.js, clickhouse: ch.client, logger, revisorIntervalMs: 100 });
  monitor = await startMonitor({ config, js: ingest.js, clickhouse: ch.client, logger, registry: createRegistry() });
  http = await startHttpGateway({ config, js: ingest.js, nc: ingest.nc, logger, registry: createRegistry(), ui: { client: ch.client } });

  // two stores two days ago (revision 1 each), and a sale now for today's flash figure and the realtime windows
  publish('store-9', 's9-1', twoDaysAgo, '129.90');
  publish('store-17', 's17-1', twoDaysAgo, '50.00');
  publish('store-9', 's9-now', Date.now() - 60_000, '12.50');
  await waitFor(async () => (await revisionsOf('store-9')).length === 1 && (await revisionsOf('store-17')).length === 1, 60_000, 'revision 1 of both stores');

  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => consoleErrors.push(err.message));
  page.on('response', (res) => {
    if (res.status() >= 400) consoleErrors.push(`${res.status()} ${res.url()}`);
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await http?.close();
  await monitor?.stop();
  await processor?.stop();
  await ingest?.dispose();
  await ch?.dispose();
  await closeTestClickHouse();
});

const points = () => page.locator('#timeline').getAttribute('data-points');

describe('the page under /ui, in headless Chromium', () => {
  it('shows readable groups, is driven by keyboard and labels, and draws revision 2 of a late event without a reload', async () => {
    await page.goto(`${http.url}/ui`);
    // labelled controls
    await expect.poll(() => page.getByLabel('Report').inputValue(), { timeout: 30_000 }).toBe('revenue');
    expect(await page.getByLabel('Measure').inputValue()).toBe('amount');
    expect(await page.getByLabel('As of').getAttribute('type')).toBe('datetime-local');

    // keyboard: the newest day (today) is listed first; ↓ then Enter opens the day two days ago
    const days = page.locator('#days button');
    await expect.poll(() => days.count(), { timeout: 30_000 }).toBe(2);
    expect(await days.nth(0).innerText()).toContain(today);
    await days.nth(0).focus();
    await page.keyboard.press('ArrowDown');
    expect(await page.evaluate(() => document.activeElement?.textContent ?? '')).toContain(day);
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#groups-caption').innerText(), { timeout: 30_000 }).toContain(day);

    // groups read store-9, never ["store-9"]
    const groups = page.locator('#groups button.group');
    await expect.poll(() => groups.allInnerTexts(), { timeout: 30_000 }).toEqual(['store-17', 'store-9']);
    expect(await page.locator('main').innerText()).not.toContain('["');
    await groups.nth(0).focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#timeline').getAttribute('data-group'), { timeout: 30_000 }).toBe('store-9');
    expect(await points()).toBe('1');
    expect(await page.locator('#chart canvas').count()).toBe(1);
    expect(await page.locator('#groups tbody tr.selected').innerText()).toMatch(/store-9\s+129\.9\s+preliminary\s+1\s+0/);

    // a late event for that day: revision 2 appears on the chart while the page stays loaded
    await page.evaluate(() => Object.assign(window, { notReloaded: true }));
    const rev1 = (await revisionsOf('store-9'))[0]!;
    publish('store-9', 's9-late', twoDaysAgo + 60_000, '20.10');
    await expect.poll(points, { timeout: 60_000, interval: 250 }).toBe('2');
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    const firstRow = page.locator('#revisions tbody tr').first();
    expect(await firstRow.innerText()).toMatch(/^2\s+preliminary\s+late\s.*\s2\s+1\s+amount 150 · orders 2$/);
    expect(await page.locator('#timeline-caption').innerText()).toContain('store-9');
    expect(await page.locator('#chart').getAttribute('aria-label')).toMatch(/2 revisions, amount now 150 \(preliminary\), 1 late events/);

    // the other panels: today's window figures, the DelayedEvent alert of the late sales
    await expect.poll(() => page.locator('#realtime tbody').innerText(), { timeout: 30_000 }).toContain('store-9');
    await expect.poll(() => page.locator('#alerts').innerText(), { timeout: 30_000 }).toContain('DelayedEvent');
    expect(await page.locator('#sagas').innerText()).toContain('none yet');

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'ui-timeline.png'), fullPage: true });

    // as of just after revision 1 was known: the chart goes back to one revision; "Now" returns
    const rev2 = (await revisionsOf('store-9'))[1]!;
    const asOf = Math.ceil((rev1.knownAt + 1) / 1000) * 1000;
    expect(asOf).toBeLessThan(rev2.knownAt);
    const local = await page.evaluate((ms) => {
      const d = new Date(ms);
      const p = (n: number) => String(n).padStart(2, '0');
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    }, asOf);
    await page.getByLabel('As of').fill(local);
    await page.getByLabel('As of').dispatchEvent('change');
    await expect.poll(points, { timeout: 30_000 }).toBe('1');
    await page.getByRole('button', { name: 'Now' }).click();
    await expect.poll(points, { timeout: 30_000 }).toBe('2');

    expect(consoleErrors).toEqual([]);
  }, 240_000);
});
