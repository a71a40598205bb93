/**
 * Batch reconciliation of one business day, 10M rows per side by default, with a few
 * hundred seeded differences of every kind, against a naive full-join query on the
 * same data in the same run.
 *
 *   npx tsx scripts/bench-recon.ts [--rows 10000000] [--runs 2] [--jitter 1000] [--keep DIR]
 *
 * The data is generated inside ClickHouse (INSERT … SELECT FROM numbers()), never in
 * Node. The bisection's findings are checked against the seeded counts; the naive join
 * (FULL OUTER JOIN on the key, the tolerance written in SQL) is timed on the same
 * differences, though unlike the bisection it cannot tell duplicates apart.
 *
 * While each bisection runs, a probe on the same client times, every 100 ms, a one-row
 * insert (as the realtime view writes) and a short parameterised read of one second of
 * the day (as a small revision reads); the same probe runs first with nothing else, as
 * the baseline. The batch's reads take the scan lane, so the probe should not wait for them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { ClickHouseClient } from '@clickhouse/client';
import { percentile } from '../src/bench/stats.ts';
import { BASE_SETTINGS, openClickHouse } from '../src/clickhouse/client.ts';
import { parseConfig } from '../src/core/config.ts';
import { findBatchDiscrepancies } from '../src/reconcile/batch-find.ts';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '10000000' }, runs: { type: 'string', default: '2' }, jitter: { type: 'string', default: '1000' }, keep: { type: 'string' } } });
const ROWS = Number(args.rows);
const JITTER = Number(args.jitter);
const DB = 'recon_bench';
const DAY = '2026-03-01';
const TZ = 'Asia/Taipei';
const START = Date.parse(`${DAY}T00:00:00+08:00`);

// seeded differences, by txn modulo a prime so they spread over every hash segment (amounts shift by exact decimals: a float literal would round)
const SEED = {
  missingInB: { mod: 100_003, rem: 3 }, // ~100 rows dropped from B
  mismatchAmount: { mod: 100_019, rem: 5 }, // ~100 rows off by 0.02 (tolerance 0.01)
  // --jitter rows off by exactly the tolerance: not findings, but each crosses a hash bucket, so
  // its segment differs and is split down to the rows: the costly case for the bisection
  withinTolerance: { mod: JITTER > 0 ? Math.max(2, Math.floor(ROWS / JITTER)) : 0, rem: 7 },
  mismatchStatus: { mod: 200_003, rem: 11 }, // ~50 rows with another status
  duplicateInB: { mod: 500_009, rem: 13 }, // ~20 rows twice in B
  missingInA: 100, // rows only in B
};

const seeded = (s: { mod: number; rem: number }) => Math.floor((ROWS - 1 - s.rem) / s.mod) + 1;

/**
 * Wall time and CPU time of one step. chDB runs inside this process, so the CPU time
 * (every thread) is the engine's work too, and stays comparable when the machine is shared.
 */
const timed = async <T>(what: () => Promise<T>): Promise<[T, number, number]> => {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const value = await what();
  const used = process.cpuUsage(cpu);
  return [value, Math.round(performance.now() - started), Math.round((used.user + used.system) / 1_000)];
};

async function generate(client: ClickHouseClient): Promise<void> {
  const command = (query: string, params: Record<string, unknown> = {}) => client.command({ query, query_params: params, clickhouse_settings: BASE_SETTINGS });
  await command(`DROP DATABASE IF EXISTS ${DB}`);
  await command(`CREATE DATABASE ${DB}`);
  const table = `(merchant LowCardinality(String), txn UInt64, occurred_at DateTime64(3, 'UTC'), amount Decimal(18, 2), status LowCardinality(String)) ENGINE = MergeTree ORDER BY occurred_at`;
  await command(`CREATE TABLE ${DB}.a ${table}`);
  await command(`CREATE TABLE ${DB}.b ${table}`);
  await command(`CREATE TABLE ${DB}.probe (id UInt64, at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY id`);
  const dayMs = 86_400_000 - 1;
  await command(
    `INSERT INTO ${DB}.a SELECT concat('m', toString(number % 1000)), number, fromUnixTimestamp64Milli(toInt64({start:Int64} + intDiv(number * {dayMs:UInt64}, {rows:UInt64})), 'UTC'),
      toDecimal64((cityHash64(number) % 1000000) / 100, 2), ['paid', 'refunded', 'void'][1 + number % 3] FROM numbers({rows:UInt64})`,
    { start: START, dayMs, rows: ROWS },
  );
  const hit = (s: { mod: number; rem: number }) => (s.mod === 0 ? 'false' : `txn % ${s.mod} = ${s.rem}`);
  await command(`INSERT INTO ${DB}.b SELECT merchant, txn, occurred_at,
      multiIf(${hit(SEED.mismatchAmount)}, amount + toDecimal64('0.02', 2), ${hit(SEED.withinTolerance)}, amount + toDecimal64('0.01', 2), amount),
      if(${hit(SEED.mismatchStatus)}, 'disputed', status)
    FROM ${DB}.a WHERE NOT ${hit(SEED.missingInB)}`);
  await command(`INSERT INTO ${DB}.b SELECT * FROM ${DB}.b WHERE ${hit(SEED.duplicateInB)}`);
  await command(`INSERT INTO ${DB}.b SELECT 'extra', {rows:UInt64} + number, fromUnixTimestamp64Milli({t:Int64}, 'UTC'), 1, 'paid' FROM numbers(${SEED.missingInA})`, { rows: ROWS, t: START + 43_200_000 });
}

/** Starts the probe; the returned function stops it and describes its timings. */
function probe(client: ClickHouseClient): () => Promise<string> {
  const insertMs: number[] = [];
  const readMs: number[] = [];
  let running = true;
  const loop = (async () => {
    for (let id = 0; running; id++) {
      const started = performance.now();
      await client.insert({ table: `${DB}.probe`, values: [{ id }], format: 'JSONEachRow', clickhouse_settings: BASE_SETTINGS });
      const inserted = performance.now();
      const from = START + (id % 86_400) * 1_000;
      const result = await client.query({
        query: `SELECT count(), sum(amount) FROM ${DB}.a WHERE occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`,
        query_params: { from, to: from + 1_000 },
        format: 'JSONEachRow',
        clickhouse_settings: BASE_SETTINGS,
      });
      await result.json();
      insertMs.push(inserted - started);
      readMs.push(performance.now() - inserted);
      await sleep(100);
    }
  })();
  const ms = (v: number) => v.toFixed(1);
  return async () => {
    running = false;
    await loop;
    return `insert p50 ${ms(percentile(insertMs, 50))} ms, max ${ms(Math.max(...insertMs))} ms; small read p50 ${ms(percentile(readMs, 50))} ms, max ${ms(Math.max(...readMs))} ms (${insertMs.length} probes each)`;
  };
}

/** The straightforward way: join the day's rows of both systems on the key and filter the differences in SQL. */
async function naiveJoin(client: ClickHouseClient): Promise<number> {
  const window = `occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`;
  const result = await client.query({
    query: `SELECT x.merchant, x.txn, y.merchant, y.txn, toString(x.amount), toString(y.amount), x.status, y.status
      FROM (SELECT merchant, txn, amount, status FROM ${DB}.a WHERE ${window}) AS x
      FULL OUTER JOIN (SELECT merchant, txn, amount, status FROM ${DB}.b WHERE ${window}) AS y
      ON x.merchant = y.merchant AND x.txn = y.txn
      WHERE x.txn IS NULL OR y.txn IS NULL OR abs(x.amount - y.amount) > 0.01 OR x.status != y.status
      SETTINGS join_use_nulls = 1`,
    query_params: { from: START, to: START + 86_400_000 },
    format: 'JSONEachRow',
    clickhouse_settings: BASE_SETTINGS,
  });
  return (await result.json()).length;
}

async function main(): Promise<void> {
  const dir = args.keep ?? mkdtempSync(join(tmpdir(), 'tidemark-bench-recon-'));
  const config = parseConfig({
    dataDir: dir,
    clickhouse: { database: DB },
    reconciliations: [{ name: 'bench', a: { table: 'a' }, b: { table: 'b' }, key: ['merchant', 'txn'], timeZone: TZ, fields: { amount: { compare: 'absolute', tolerance: '0.01' }, status: { compare: 'exact' } } }],
  });
  const client = openClickHouse(config);
  try {
    const [, generateMs] = await timed(() => generate(client));
    const expected = { MissingInB: seeded(SEED.missingInB), MissingInA: SEED.missingInA, Mismatch: 0, Duplicate: seeded(SEED.duplicateInB) };
    const mismatchTxns = new Set<number>();
    for (const s of [SEED.mismatchAmount, SEED.mismatchStatus]) for (let t = s.rem; t < ROWS; t += s.mod) if (t % SEED.missingInB.mod !== SEED.missingInB.rem) mismatchTxns.add(t);
    expected.Mismatch = mismatchTxns.size;
    process.stdout.write(`rows per side: ${ROWS.toLocaleString('en')} (+${SEED.missingInA} only in B, ${expected.Duplicate} duplicated in B); generated in ${generateMs} ms\n`);
    process.stdout.write(`seeded findings: ${JSON.stringify(expected)}; ${JITTER > 0 ? seeded(SEED.withinTolerance) : 0} rows differ within tolerance\n`);
    const stopBaseline = probe(client);
    await sleep(10_000);
    process.stdout.write(`no batch running (10 s): ${await stopBaseline()}\n\n`);
    process.stdout.write('run  bisection_ms  cpu_ms  levels  segments_compared  rows_fetched  findings  naive_join_ms  cpu_ms  join_rows\n');
    for (let run = 1; run <= Number(args.runs); run++) {
      const stopProbe = probe(client);
      const [found, bisectMs, bisectCpu] = await timed(() => findBatchDiscrepancies(client, DB, config.reconciliations[0]!, DAY));
      const probed = await stopProbe();
      const counts = { MissingInB: 0, MissingInA: 0, Mismatch: 0, Duplicate: 0 };
      for (const d of found.discrepancies) counts[d.type]++;
      if (JSON.stringify(counts) !== JSON.stringify(expected)) throw new Error(`bisection found ${JSON.stringify(counts)}, expected ${JSON.stringify(expected)}`);
      const [joinRows, joinMs, joinCpu] = await timed(() => naiveJoin(client));
      const s = found.stats;
      const cells = [[run, 5], [bisectMs, 14], [bisectCpu, 8], [s.levels, 8], [s.segmentsCompared, 19], [s.rowsFetched, 14], [found.discrepancies.length, 10], [joinMs, 15], [joinCpu, 8], [joinRows, 0]] as const;
      process.stdout.write(`${cells.map(([v, w]) => String(v).padEnd(w)).join('')}\n`);
      process.stdout.write(`     while the batch ran: ${probed}\n`);
    }
  } finally {
    await client.close();
    if (!args.keep) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
