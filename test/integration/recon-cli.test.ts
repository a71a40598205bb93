import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { register } from '../../src/cli/commands/reconcile.ts';
import { openClickHouse } from '../../src/clickhouse/client.ts';
import { isTidemarkError } from '../../src/core/errors.ts';
import { arrive } from '../../src/reconcile/logic/pending.ts';
import { openStateStore } from '../../src/reconcile/state-store.ts';
import { testConfig } from '../harness/config.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

let server: TestNats;
let dir: string;
let configFile: string;
const DAY = '2026-03-01';

beforeAll(async () => {
  server = await startTestNats();
  dir = mkdtempSync(join(tmpdir(), 'tidemark-recon-cli-'));
  configFile = join(dir, 'tidemark.yaml');
  const settings = {
    dataDir: dir,
    nats: { url: server.url },
    reconciliations: [
      { name: 'till', a: { table: 'bank' }, b: { table: 'ledger' }, key: ['txn'], fields: { amount: { compare: 'absolute', tolerance: '0.01' } } },
      { name: 'feed', a: { subject: 'recon.feed.a' }, b: { subject: 'recon.feed.b' }, key: ['txn'], lag: '1h' },
    ],
  };
  writeFileSync(configFile, JSON.stringify(settings));
  // this file's process is the only chDB user of `dir`; the CLI opens it after us
  const client = openClickHouse(testConfig({ dataDir: dir }));
  await client.command({ query: 'CREATE DATABASE IF NOT EXISTS tidemark' });
  for (const table of ['bank', 'ledger']) {
    await client.command({ query: `CREATE TABLE tidemark.${table} (txn UInt32, occurred_at DateTime64(3, 'UTC'), amount Decimal(18, 2)) ENGINE = MergeTree ORDER BY txn` });
  }
  await client.command({ query: `INSERT INTO tidemark.bank SELECT number, toDateTime64('2026-03-01 12:00:00', 3, 'UTC'), 10 FROM numbers(1000)` });
  await client.command({ query: `INSERT INTO tidemark.ledger SELECT txn, occurred_at, if(txn = 7, 11, amount) FROM tidemark.bank WHERE txn != 3` });
  await client.close();
});

afterAll(async () => {
  await server?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function cli(...args: string[]): Promise<string> {
  const program = new Command('tidemark').exitOverride().option('-c, --config <file>');
  register(program);
  const out: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });
  try {
    await program.parseAsync(['node', 'tidemark', '--config', configFile, 'reconcile', ...args]);
  } finally {
    spy.mockRestore();
  }
  return out.join('');
}

describe('tidemark reconcile', () => {
  it('run reconciles a day and prints what it found and did', async () => {
    const out = await cli('run', '--name', 'till', '--day', DAY);
    expect(out).toMatch(/^till 2026-03-01: A 1000 rows, B 999 rows; MissingInA 0, MissingInB 1, Mismatch 1, Duplicate 0 \(2 new\); healed 0, queued 2, alert raised; 1 levels, 5 rows fetched, \d+ ms \(run batch-till-2026-03-01-\d+-[0-9a-f]+\)$/m);
  });

  it('report lists runs and discrepancies; ack closes them', async () => {
    const report = JSON.parse(await cli('report', '--name', 'till', '--json')) as { runs: Array<{ status: string }>; discrepancies: Array<{ id: string; type: string; status: string; diffs: string }> };
    expect(report.runs.map((r) => r.status)).toEqual(['succeeded']);
    expect(report.discrepancies.map((d) => `${d.type} ${d.status}`)).toEqual(['MissingInB open', 'Mismatch open']);
    expect(JSON.parse(report.discrepancies[1]!.diffs)).toEqual([{ field: 'amount', a: '10', b: '11' }]);

    expect(await cli('ack', report.discrepancies[0]!.id, '--note', 'bank confirmed', '--by', 'alice')).toBe('acknowledged 1 of 1 (the others already were)\n');
    const text = await cli('report', '--name', 'till', '--status', 'acknowledged');
    expect(text).toContain('till 2026-03-01 MissingInB acknowledged 1');
    expect(text).toContain('note=bank confirmed');
  });

  it('report --pending lists streaming keys still expected within their window', async () => {
    const nc = await connect({ servers: server.url });
    const recon = testConfig({ reconciliations: [{ name: 'feed', a: { subject: 'recon.feed.a' }, b: { subject: 'recon.feed.b' }, key: ['txn'], lag: '1h' }] }).reconciliations[0]!;
    const store = await openStateStore(jetstream(nc), recon);
    const at = Date.parse('2026-03-01T12:00:00Z');
    await store.change(['42'], (current) => arrive(recon, current, 'B', 'RECON:1', { key: ['42'], fields: {}, time: at }, at));
    await nc.close();
    expect(await cli('report', '--pending', '--name', 'feed')).toContain('feed: 1 expected\n  key=["42"] has B, waits until 2026-03-01T13:00:00.000Z\n');
  });

  it('refuses an unknown reconciliation and a bad day with typed errors', async () => {
    const unknown = await cli('run', '--name', 'nope').catch((e: unknown) => e);
    expect(isTidemarkError(unknown, 'RECON_UNKNOWN')).toBe(true);
    const badDay = await cli('run', '--day', '1 March').catch((e: unknown) => e);
    expect(isTidemarkError(badDay, 'CONFIG_INVALID')).toBe(true);
  });
});
