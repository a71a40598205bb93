import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openClickHouse } from '../../src/clickhouse/client.ts';
import { freePort } from '../../src/nats/embedded-server.ts';
import { dailyFigures } from '../../src/sinks/clickhouse/daily-figures.ts';
import { testConfig } from '../harness/config.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { report } from '../support/old-events.ts';

let nats: TestNats | undefined;
const dir = mkdtempSync(join(tmpdir(), 'tidemark-upgrade-'));

afterAll(async () => {
  await nats?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a process to its end and returns its stdout; a non-zero exit fails the test with its stderr. */
function run(args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, LOG_LEVEL: 'error', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.join(' ')} exited ${code}: ${err}`))));
  });
}

describe('tidemark init on a data directory of the previous version', () => {
  it('migrates events to the (source, id) key in place, every figure unchanged', async () => {
    const before = JSON.parse(await run(['--import', 'tsx', 'test/support/write-old-database.ts', dir])) as Array<[string, Array<{ groupKey: string }>]>;
    expect(before.length).toBeGreaterThan(10);
    nats = await startTestNats();
    const configFile = join(dir, 'tidemark.yaml');
    writeFileSync(configFile, '{}');
    const env = { NATS_URL: nats.url, TIDEMARK_DATA_DIR: dir, TIDEMARK_CLICKHOUSE_HTTP_PORT: String(await freePort()) };
    expect(await run(['bin/tidemark.mjs', 'init', '--config', configFile], env)).toMatch(/schema version 13, applied 8 events keyed by \(source, id\), 9 realtime refusals and checkpoints, 10 webhook deliveries, 11 readable groups, 12 incremental daily states, 13 realtime fences/);
    expect(await run(['bin/tidemark.mjs', 'init', '--config', configFile], env)).toMatch(/schema version 13, unchanged/);

    const config = testConfig({ dataDir: dir });
    const client = openClickHouse(config);
    try {
      const db = config.clickhouse.database;
      const [table] = await (await client.query({ query: `SELECT sorting_key FROM system.tables WHERE database = '${db}' AND name = 'events'`, format: 'JSONEachRow' })).json<{ sorting_key: string }>();
      expect(table?.sorting_key).toBe('type, occurred_at, source, id');
      const after = await Promise.all(before.map(async ([day]) => [day, await dailyFigures(client, db, report, day)]));
      expect(after).toEqual(before);
    } finally {
      await client.close();
    }
  }, 120_000);
});
