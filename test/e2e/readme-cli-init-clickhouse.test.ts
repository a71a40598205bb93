import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { exited, spawnTidemarkCaptured, type CapturedTidemark } from '../harness/processes.ts';
import { waitFor } from '../harness/streams.ts';

// README, Commands: `init` "creates or updates streams and durable consumers (idempotent)" and
// the tables; `clickhouse` "serve the embedded ClickHouse over its HTTP interface"; Security:
// without clickhouse.serve.users it serves `CLICKHOUSE_USER` with `CLICKHOUSE_PASSWORD`, and
// "commands log in as the user CLICKHOUSE_USER names". Both run as processes.
let server: TestNats;
let dir: string;
let env: Record<string, string>;
let served: CapturedTidemark | undefined;

beforeAll(async () => {
  server = await startTestNats();
  dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-init-'));
  writeFileSync(join(dir, 'tidemark.json'), JSON.stringify({
    reports: [{ name: 'revenue', types: ['sale'], timeZone: 'UTC', groupBy: ['source'], measures: { amount: { fn: 'sum', field: 'amount' } } }],
  }));
  env = { NATS_URL: server.url, TIDEMARK_CONFIG: join(dir, 'tidemark.json'), TIDEMARK_DATA_DIR: join(dir, 'data'), CLICKHOUSE_USER: 'analyst', CLICKHOUSE_PASSWORD: 'ch-pass-1' };
});

afterAll(async () => {
  served?.child.kill('SIGTERM');
  if (served) await exited(served.child);
  await server?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const finished = async (run: CapturedTidemark): Promise<CapturedTidemark> => {
  await exited(run.child);
  return run;
};

describe('tidemark init and tidemark clickhouse, as processes', () => {
  it('init creates the streams, consumers and tables, and a second run changes nothing; clickhouse serves them to CLICKHOUSE_USER only', async () => {
    const first = await finished(spawnTidemarkCaptured(['init'], env));
    expect(first.stderr()).toBe('');
    expect(first.child.exitCode).toBe(0);
    for (const stream of ['INGEST', 'EVENTS', 'DLQ', 'ALERTS', 'SAGAS']) expect(first.stdout()).toMatch(new RegExp(`^stream\\s+${stream}\\s+created`, 'm'));
    expect(first.stdout()).toMatch(/^tables\s+tidemark \(embedded\)\s+schema version \d+, applied /m);

    const nc: NatsConnection = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const streams: string[] = [];
      for await (const info of jsm.streams.list()) streams.push(info.config.name);
      expect(streams).toEqual(expect.arrayContaining(['INGEST', 'EVENTS', 'DLQ', 'ALERTS', 'SAGAS']));
      const durables: string[] = [];
      for await (const info of jsm.consumers.list('EVENTS')) durables.push(info.name);
      expect(durables).toEqual(expect.arrayContaining(['processor', 'monitor']));
    } finally {
      await nc.close();
    }

    const again = await finished(spawnTidemarkCaptured(['init'], env));
    expect(again.child.exitCode).toBe(0);
    expect(again.stdout()).not.toMatch(/\bcreated\b/);
    expect(again.stdout()).toMatch(/^tables\s+tidemark \(embedded\)\s+schema version \d+, unchanged/m);

    served = spawnTidemarkCaptured(['clickhouse', '--port', '0'], env);
    const url = await waitFor(() => {
      if (served!.child.exitCode !== null) throw new Error(`clickhouse exited: ${served!.stderr()}`);
      return /is serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(served!.stdout())?.[1];
    }, 60_000, 'the endpoint');
    const sql = (query: string, user?: string, password?: string) =>
      fetch(`${url}/?query=${encodeURIComponent(query)}`, user ? { headers: { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } } : {});
    const right = await sql("SELECT name FROM system.tables WHERE database = 'tidemark' AND name IN ('events', 'report_revisions', 'alerts') ORDER BY name", 'analyst', 'ch-pass-1');
    expect([right.status, await right.text()]).toEqual([200, 'alerts\nevents\nreport_revisions\n']);
    const wrong = await sql('SELECT 1', 'analyst', 'ch-pass-2');
    expect(wrong.status).toBe(403);
    expect(await wrong.text()).toMatch(/Code: 516\. DB::Exception: analyst: Authentication failed/);
    expect((await sql('SELECT 1')).status).not.toBe(200);

    // a command in the same data directory logs in as CLICKHOUSE_USER at the endpoint the owner file names
    const day = new Date().toISOString().slice(0, 10);
    const report = await finished(spawnTidemarkCaptured(['report', '--report', 'revenue', '--day', day], env));
    expect(report.stderr()).toBe('');
    expect(report.stdout()).toContain(`revenue ${day} (UTC)\n\nno revisions`);
    const refused = await finished(spawnTidemarkCaptured(['report', '--report', 'revenue', '--day', day], { ...env, CLICKHOUSE_PASSWORD: 'ch-pass-2' }));
    expect(refused.child.exitCode).toBe(2);
    expect(refused.stderr().trim().split('\n')).toEqual([expect.stringMatching(/^tidemark: ClickHouse at http:\/\/127\.0\.0\.1:\d+ refused the login as user "analyst" \(code 516\): check CLICKHOUSE_USER and CLICKHOUSE_PASSWORD/)]);
  }, 180_000);
});
