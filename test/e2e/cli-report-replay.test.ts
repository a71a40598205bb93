import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { businessDay } from '../../src/core/business-day.ts';
import { startProcessor, type Processor } from '../../src/processors/processor.ts';
import { publishedRevisions } from '../../src/query/revisions.ts';
import { testConfig } from '../harness/config.ts';
import { useProcessStack } from '../harness/process-stack.ts';
import { waitFor } from '../harness/streams.ts';

const run = promisify(execFile);
/** Each test starts the CLI once or twice: seconds of start-up alone, far more on a loaded 2-core machine (33 s measured at load 30). */
const CLI_TIMEOUT_MS = 120_000;
const report = {
  name: 'ledger',
  types: ['sale', 'adjustment'],
  timeZone: 'Europe/Berlin',
  groupBy: ['source'],
  measures: { total: { fn: 'sum', field: 'amount' }, entries: { fn: 'count' } },
  coalesce: '100ms',
};
/** The same rules under another name, for the replay test alone: its revision 3 never shows in the report tests, whatever runs first. */
const replayed = { ...report, name: 'ledger_replay' };
const changedRules = { ...replayed, measures: { ...report.measures, largest: { fn: 'max', field: 'amount' } } };

let processor: Processor;
const config = testConfig({ reports: [report, replayed] });
const stack = useProcessStack({ reports: [report, replayed] }, 'tidemark-cli-', { migrated: true });
const occurredAt = Date.now() - 2 * 86_400_000;
const day = businessDay(occurredAt, 'Europe/Berlin');

async function tidemark(args: string[], rules: object): Promise<string> {
  const file = join(stack.dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ reports: [rules] }));
  const { stdout } = await run(process.execPath, ['bin/tidemark.mjs', ...args, '--config', file], { env: { ...process.env, NATS_URL: stack.server.url, CLICKHOUSE_URL: stack.clickhouse.url, LOG_LEVEL: 'error' } });
  return stdout;
}

beforeAll(async () => {
  const { nc, js, client } = stack;
  const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
  processor = await startProcessor({ config, js, clickhouse: client, logger, revisorIntervalMs: 50 });
  const publish = (id: string, type: string, amount: string) => nc.publish(`ingest.shop-1.${type}`, JSON.stringify({ id, occurredAt, data: { amount } }));
  const latestOfEach = async () => Promise.all(['ledger', 'ledger_replay'].map(async (name) => (await publishedRevisions(client, config.clickhouse.database, name, day))[0]?.revision));
  publish('a', 'sale', '120.10');
  await waitFor(async () => (await latestOfEach()).every((r) => r === 1), 60_000, 'revision 1 of both reports');
  // a correction is an event, never an update: it makes revision 2
  publish('c', 'adjustment', '-0.10');
  await waitFor(async () => (await latestOfEach()).every((r) => r === 2), 60_000, 'revision 2 of both reports');
  await processor.stop();
});

// each test runs the CLI as a process (a tsx start-up, seconds on a loaded machine)
describe('tidemark report', { timeout: 120_000 }, () => {
  it('prints the history with readable groups and says that the latest revision agrees with the raw events', async () => {
    const out = await tidemark(['report', '--report', 'ledger', '--day', day, '--history'], report);
    expect(out).toMatch(/\nshop-1\s+1\s+preliminary\s+new .*\s1\s+0\s+120.1\s+1\n/);
    expect(out).toMatch(/\nshop-1\s+2\s+preliminary\s+late .*\s2\s+1\s+120\s+2\n/);
    expect(out).toContain('shop-1: agrees with the raw events');
    expect(out).not.toContain('["shop-1"]');
  }, CLI_TIMEOUT_MS);

  it('answers as of a time, from the revisions and from the raw events alike', async () => {
    const [first] = await publishedRevisions(stack.client, config.clickhouse.database, 'ledger', day, { history: true });
    const json = JSON.parse(await tidemark(['report', '--report', 'ledger', '--day', day, '--as-of', String(first!.knownAt), '--json'], report)) as {
      revisions: Array<{ revision: number; group: Record<string, string>; measures: Record<string, string> }>;
      checks: Array<{ agrees: boolean; fromEvents: Record<string, string> }>;
    };
    expect(json.revisions.map((r) => [r.revision, r.group, r.measures.total])).toEqual([[1, { source: 'shop-1' }, '120.1']]);
    expect(json.checks).toEqual([{ groupKey: '["shop-1"]', label: 'shop-1', agrees: true, fromEvents: { total: '120.1', entries: '1' } }]);
  }, CLI_TIMEOUT_MS);
});

describe('tidemark replay', { timeout: 120_000 }, () => {
  it('writes a replay revision where a rule change moves a figure, and nothing when run again', async () => {
    const first = await tidemark(['replay', '--report', 'ledger_replay'], changedRules);
    expect(first).toMatch(/replayed ledger_replay: 1 days, 2 events .* 1 new revisions/);
    const latest = (await publishedRevisions(stack.client, config.clickhouse.database, 'ledger_replay', day))[0]!;
    expect(latest).toMatchObject({ revision: 3, reason: 'replay', status: 'preliminary', measures: { total: '120', entries: '2', largest: '120.1' } });
    expect(await tidemark(['replay', '--report', 'ledger_replay', '--from', day, '--to', day], changedRules)).toMatch(/0 new revisions/);
  }, CLI_TIMEOUT_MS);
});
