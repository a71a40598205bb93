/**
 * Throughput of the embedded ClickHouse served over HTTP, against the same work in process.
 *
 *   npx tsx scripts/bench-clickhouse-http.ts [--batches 30] [--concurrency 4]
 *
 * The endpoint runs in a child process (as `tidemark clickhouse` would), each side on its own
 * data directory; this process drives both with @clickhouse/client. Prints one table.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { BASE_SETTINGS, openClickHouse } from '../src/clickhouse/client.ts';
import { parseConfig } from '../src/core/config.ts';
import { ChdbEngine } from '../src/clickhouse/http-server/engine.ts';
import { startClickHouseHttpServer } from '../src/clickhouse/http-server/server.ts';

const BATCH_ROWS = 10_000;
const TABLE = `CREATE TABLE bench.events (id UInt64, source LowCardinality(String), type LowCardinality(String),
  occurred_at DateTime64(3, 'UTC'), amount Decimal(18, 2), payload String) ENGINE = MergeTree ORDER BY (source, id)`;

/** Child mode: serve a fresh data directory and report the URL to the parent. */
async function serve(dir: string): Promise<void> {
  const engine = await ChdbEngine.open({ path: dir });
  const server = await startClickHouseHttpServer({ engine, port: 0 });
  process.send?.({ url: server.url });
  process.on('disconnect', () => {
    void server.close().then(() => engine.close()).then(() => process.exit(0));
  });
}

function batch(offset: number): Array<Record<string, unknown>> {
  return Array.from({ length: BATCH_ROWS }, (_, i) => ({
    id: offset + i,
    source: `store-${(offset + i) % 50}`,
    type: 'sale',
    occurred_at: '2026-11-20 05:05:00.123',
    amount: `${(i % 10_000) / 100}`,
    payload: `{"sku":"sku-${i % 997}","qty":${i % 7}}`,
  }));
}

type Measure = { label: string; value: number; unit: string };

async function timed(run: () => Promise<number>): Promise<{ count: number; seconds: number }> {
  const started = performance.now();
  const count = await run();
  return { count, seconds: (performance.now() - started) / 1000 };
}

async function inserts(client: ClickHouseClient, batches: number, concurrency: number, start: number): Promise<number> {
  let next = 0;
  const worker = async () => {
    for (let b = next++; b < batches; b = next++) await client.insert({ table: 'bench.events', values: batch(start + b * BATCH_ROWS), format: 'JSONEachRow' });
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return batches * BATCH_ROWS;
}

async function pointQueries(client: ClickHouseClient, count: number, concurrency: number): Promise<number> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const rs = await client.query({ query: 'SELECT count() AS c, sum(amount) AS s FROM bench.events WHERE source = {source:String}', query_params: { source: `store-${i % 50}` }, format: 'JSONEachRow' });
      await rs.json();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return count;
}

async function scan(client: ClickHouseClient): Promise<number> {
  const rs = await client.query({ query: 'SELECT id, source, amount, payload FROM bench.events', format: 'JSONCompactEachRow' });
  let rows = 0;
  for await (const chunk of rs.stream()) rows += (chunk as unknown[]).length;
  return rows;
}

/** /ping round trips while `heavy` CPU-bound queries keep the engine busy. */
async function pingUnderLoad(url: string, client: ClickHouseClient, heavy: number): Promise<{ p50: number; max: number; pings: number }> {
  let running = true;
  const load = Promise.all(
    Array.from({ length: heavy }, async () => {
      while (running) await (await client.query({ query: 'SELECT sum(cityHash64(number)) FROM numbers(100000000)', format: 'JSONEachRow' })).json();
    }),
  );
  const samples: number[] = [];
  const until = performance.now() + 3_000;
  while (performance.now() < until) {
    const started = performance.now();
    await (await fetch(`${url}/ping`)).text();
    samples.push(performance.now() - started);
    await new Promise((r) => setTimeout(r, 20));
  }
  running = false;
  await load;
  samples.sort((a, b) => a - b);
  return { p50: samples[Math.floor(samples.length / 2)]!, max: samples.at(-1)!, pings: samples.length };
}

async function measure(label: string, client: ClickHouseClient, options: { batches: number; concurrency: number }): Promise<Measure[]> {
  await client.command({ query: 'CREATE DATABASE IF NOT EXISTS bench' });
  await client.command({ query: TABLE });
  const out: Measure[] = [];
  const seq = await timed(() => inserts(client, options.batches, 1, 0));
  out.push({ label: `${label}: insert 10k-row JSONEachRow batches, 1 writer`, value: seq.count / seq.seconds, unit: 'rows/s' });
  const par = await timed(() => inserts(client, options.batches, options.concurrency, 10_000_000));
  out.push({ label: `${label}: insert 10k-row JSONEachRow batches, ${options.concurrency} writers`, value: par.count / par.seconds, unit: 'rows/s' });
  const q1 = await timed(() => pointQueries(client, 500, 1));
  out.push({ label: `${label}: parameterised aggregate query, 1 client`, value: q1.count / q1.seconds, unit: 'queries/s' });
  const q8 = await timed(() => pointQueries(client, 1000, 8));
  out.push({ label: `${label}: parameterised aggregate query, 8 clients`, value: q8.count / q8.seconds, unit: 'queries/s' });
  const read = await timed(() => scan(client));
  out.push({ label: `${label}: full scan streamed (${read.count} rows)`, value: read.count / read.seconds, unit: 'rows/s' });
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { serve: { type: 'string' }, batches: { type: 'string', default: '30' }, concurrency: { type: 'string', default: '4' } } });
  if (values.serve) return serve(values.serve);
  const options = { batches: Number(values.batches), concurrency: Number(values.concurrency) };
  const localDir = mkdtempSync(join(tmpdir(), 'tidemark-bench-local-'));
  const servedDir = mkdtempSync(join(tmpdir(), 'tidemark-bench-served-'));
  let child: ChildProcess | undefined;
  try {
    child = fork(fileURLToPath(import.meta.url), ['--serve', servedDir], { execArgv: ['--import', 'tsx'] });
    const url = await new Promise<string>((resolve, reject) => {
      child!.once('message', (m) => resolve((m as { url: string }).url));
      child!.once('exit', (code) => reject(new Error(`server process exited with ${code}`)));
    });
    const local = openClickHouse(parseConfig({ dataDir: localDir }));
    const http = createClient({ url, clickhouse_settings: BASE_SETTINGS, max_open_connections: 16 });
    const results = [...(await measure('in-process', local, options)), ...(await measure('http', http, options))];
    const ping = await pingUnderLoad(url, http, 4);
    await local.close();
    await http.close();
    const width = Math.max(...results.map((r) => r.label.length));
    for (const r of results) console.log(`${r.label.padEnd(width)}  ${Math.round(r.value).toLocaleString('en-US').padStart(12)} ${r.unit}`);
    console.log(`${'http: /ping while 4 heavy queries run'.padEnd(width)}  p50 ${ping.p50.toFixed(1)} ms, max ${ping.max.toFixed(1)} ms over ${ping.pings} pings`);
  } finally {
    child?.disconnect();
    await new Promise((r) => (child ? child.once('exit', r) : r(undefined)));
    rmSync(localDir, { recursive: true, force: true });
    rmSync(servedDir, { recursive: true, force: true });
  }
}

await main();
