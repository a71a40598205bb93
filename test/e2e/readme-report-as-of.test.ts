import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { businessDay } from '../../src/core/business-day.ts';
import { startProcessor } from '../../src/processors/processor.ts';
import { publishedRevisions } from '../../src/query/revisions.ts';
import { testConfig } from '../harness/config.ts';
import { useProcessStack } from '../harness/process-stack.ts';
import { waitFor } from '../harness/streams.ts';

// README: `npx tidemark report --report revenue --day 2026-11-20 --as-of 2026-11-21T03:00:00+08:00 --json`,
// and "As-of: … between two revisions the raw side may already hold events the next revision
// will publish, and the command says so". Revision 1 holds s-1; s-2 is stored by a processor
// whose coalesce (1 h) keeps it out of any revision while the test runs.
const run = promisify(execFile);
const revenue = { name: 'revenue', types: ['sale'], timeZone: 'Asia/Taipei', groupBy: ['source'], measures: { amount: { fn: 'sum', field: 'amount' } }, coalesce: '100ms' };
const config = testConfig({ reports: [revenue] });
const db = config.clickhouse.database;
const occurredAt = Date.now() - 86_400_000;
const day = businessDay(occurredAt, 'Asia/Taipei');

const stack = useProcessStack({ reports: [revenue] }, 'tidemark-as-of-', { migrated: true });
let revisionKnownAt: number;
let secondReceivedAt: number;

/** An instant as ISO-8601 in Taipei's offset, as the README writes it. */
const taipei = (ms: number): string => new Date(ms + 8 * 3_600_000).toISOString().replace('Z', '+08:00');

async function report(args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ['bin/tidemark.mjs', 'report', '--report', 'revenue', '--day', day, ...args, '--config', stack.configFile], {
    env: { ...process.env, NATS_URL: stack.server.url, CLICKHOUSE_URL: stack.clickhouse.url, LOG_LEVEL: 'error' },
  });
  return stdout;
}

beforeAll(async () => {
  const { client } = stack;
  const logger = pino({ level: 'silent' });
  const publish = (id: string, amount: string) => stack.nc.publish('ingest.store-17.sale', JSON.stringify({ id, occurredAt, data: { amount } }));

  const revising = await startProcessor({ config, js: stack.js, clickhouse: client, logger, revisorIntervalMs: 50 });
  publish('s-1', '129.90');
  const [first] = await waitFor(async () => {
    const revisions = await publishedRevisions(client, db, 'revenue', day);
    return revisions.length === 1 ? revisions : undefined;
  }, 30_000, 'revision 1');
  revisionKnownAt = first!.knownAt;
  await revising.stop();

  const slow = await startProcessor({ config: testConfig({ reports: [{ ...revenue, coalesce: '1h' }] }), js: stack.js, clickhouse: client, logger, revisorIntervalMs: 50 });
  publish('s-2', '15.00');
  secondReceivedAt = await waitFor(async () => {
    const result = await client.query({ query: `SELECT count() AS n, toUnixTimestamp64Milli(max(received_at)) AS last FROM ${db}.events FINAL WHERE source = 'store-17'`, format: 'JSONEachRow' });
    const [row] = await result.json<{ n: string; last: string }>();
    return Number(row!.n) === 2 ? Number(row!.last) : undefined;
  }, 30_000, 's-2 stored');
  await slow.stop();
  expect(await publishedRevisions(client, db, 'revenue', day)).toMatchObject([{ revision: 1, measures: { amount: '129.9' } }]);
}, 120_000);

describe('tidemark report --as-of with an ISO-8601 time', () => {
  it('at revision 1\'s known_at (written with a +08:00 offset): revision 1, agreeing with the raw events received by then', async () => {
    const asOf = taipei(revisionKnownAt);
    const text = await report(['--as-of', asOf]);
    expect(text).toContain(`revenue ${day} (Asia/Taipei) as known at ${new Date(revisionKnownAt).toISOString()}`);
    expect(text).toMatch(/store-17\s+1\s+preliminary\s+new\s/);
    expect(text).toContain('store-17: agrees with the raw events received by then');

    const json = JSON.parse(await report(['--as-of', asOf, '--json'])) as { asOf: string; revisions: Array<{ revision: number; measures: Record<string, string> }>; checks: unknown[] };
    expect(json.asOf).toBe(new Date(revisionKnownAt).toISOString());
    expect(json.revisions.map((r) => [r.revision, r.measures.amount])).toEqual([[1, '129.9']]);
    expect(json.checks).toEqual([{ groupKey: '["store-17"]', label: 'store-17', agrees: true, fromEvents: { amount: '129.9' } }]);
  }, 120_000);

  it('once s-2 was received but not yet revised: "raw events say …", with --as-of and without', async () => {
    const said = 'store-17: raw events say {"amount":"144.9"} (events received after the latest revision are not folded in yet)';
    const asOf = await report(['--as-of', taipei(secondReceivedAt)]);
    expect(asOf).toMatch(/store-17\s+1\s+preliminary\s+new\s/);
    expect(asOf).toContain(said);
    expect(await report([])).toContain(said);
  }, 120_000);
});
