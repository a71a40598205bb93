import type { ClickHouseClient } from '@clickhouse/client';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type ReconciliationConfig } from '../../src/core/config.ts';
import { findBatchDiscrepancies } from '../../src/reconcile/batch-find.ts';
import { discrepancyId } from '../../src/reconcile/logic/keys.ts';
import type { Discrepancy, ReconRecord } from '../../src/reconcile/logic/types.ts';
import { closeTestClickHouse, openTestClickHouse, type TestClickHouse } from '../harness/clickhouse.ts';
import { referenceDiff, type RefFinding } from '../support/recon-reference.ts';

let ch: TestClickHouse;
let client: ClickHouseClient;
const DAY = '2026-03-01';
const START = Date.parse('2026-03-01T00:00:00+08:00');
const ROWS = 30_000;

beforeAll(async () => {
  ch = await openTestClickHouse();
  client = ch.client;
  await seedPayments(ch.db);
});

afterAll(async () => {
  await ch?.dispose();
  await closeTestClickHouse();
});

const command = (query: string, params: Record<string, unknown> = {}) => client.command({ query, query_params: params });

function recon(db: string, overrides: Record<string, unknown> = {}): ReconciliationConfig {
  return parseConfig({
    clickhouse: { database: db },
    reconciliations: [{
      name: 'pay',
      a: { table: 'bank' },
      b: { table: 'ledger', fields: { amount: 'amt' }, time: 'booked_at' },
      key: ['merchant', 'txn'],
      fields: { amount: { compare: 'absolute', tolerance: '0.01' }, fee: { compare: 'percentage', tolerance: '1' }, status: { compare: 'exact' } },
      lag: '1m',
      timeZone: 'Asia/Taipei',
      ...overrides,
    }],
  }).reconciliations[0]!;
}

async function createTables(db: string): Promise<void> {
  await command(`CREATE TABLE ${db}.bank (merchant String, txn UInt64, occurred_at DateTime64(3, 'UTC'), amount Decimal(18, 2), fee Decimal(18, 4), status LowCardinality(String)) ENGINE = MergeTree ORDER BY occurred_at`);
  // B differs in types on purpose: text txn, wider decimals, a nullable fee, a renamed amount and time
  await command(`CREATE TABLE ${db}.ledger (merchant LowCardinality(String), txn String, booked_at DateTime64(3, 'UTC'), amt Decimal(38, 6), fee Nullable(Decimal(18, 4)), status String) ENGINE = MergeTree ORDER BY booked_at`);
}

type Row = { merchant: string; txn: string; t: string; amount: string; fee: string | null; status: string };

async function allRecords(db: string, table: 'bank' | 'ledger'): Promise<ReconRecord[]> {
  const [time, amount] = table === 'bank' ? ['occurred_at', 'amount'] : ['booked_at', 'amt'];
  const result = await client.query({
    query: `SELECT merchant, toString(txn) AS txn, toUnixTimestamp64Milli(${time}) AS t, toString(${amount}) AS amount, toString(fee) AS fee, toString(status) AS status FROM ${db}.${table}`,
    format: 'JSONEachRow',
  });
  return (await result.json<Row>()).map((r) => ({ key: [r.merchant, r.txn], fields: { amount: r.amount, fee: r.fee, status: r.status }, time: Number(r.t) }));
}

/** The seeded payment tables both systems' tests read: ROWS rows per side with known discrepancies by txn. */
async function seedPayments(db: string): Promise<void> {
  await createTables(db);
  await command(`INSERT INTO ${db}.bank SELECT concat('m', toString(number % 37)), number, fromUnixTimestamp64Milli(toInt64({start:Int64} + 60000 + number * 2500), 'UTC'),
    toDecimal64((cityHash64(number) % 1000000) / 100, 2), if(number IN (302, 303), toDecimal64('2', 4), toDecimal64(1 + (cityHash64(number, 1) % 10000) / 10000, 4)),
    ['paid', 'void'][1 + number % 2] FROM numbers({rows:UInt64})`, { start: START, rows: ROWS });
  // B: trails A by 0.5 s; seeded differences by txn
  await command(`INSERT INTO ${db}.ledger SELECT merchant, toString(txn), occurred_at + toIntervalMillisecond(500),
    -- exact decimal literals: a float literal would round the edge away
    multiIf(txn IN (101, 102, 103), amount + toDecimal64('0.011', 3),   -- beyond the absolute tolerance
            txn IN (201, 202), amount + toDecimal64('0.01', 2),          -- exactly at it: agrees
            txn IN (203, 204), amount - toDecimal64('0.01', 2),
            toDecimal128(amount, 6)),
    multiIf(txn = 301, NULL,                                             -- NULL never agrees with a value
            txn = 302, toDecimal64('2.02', 4),                           -- 2 + 1%: at the percentage edge, agrees
            txn = 303, toDecimal64('2.0201', 4),                         -- beyond it
            fee),
    if(txn IN (401, 402), 'refunded', status)
    FROM ${db}.bank WHERE txn NOT IN (11, 12, 13, 14)`);
  await command(`INSERT INTO ${db}.ledger SELECT 'm99', toString(900000 + number), fromUnixTimestamp64Milli({t:Int64}, 'UTC'), 5, 1, 'paid' FROM numbers(1, 2)`, { t: START + 3_600_000 });
  // duplicates: txn 501 twice in A; 601 three times in B; 701 twice on both sides alike
  await command(`INSERT INTO ${db}.bank SELECT * FROM ${db}.bank WHERE txn IN (501, 701)`);
  await command(`INSERT INTO ${db}.ledger SELECT * FROM ${db}.ledger WHERE txn IN ('601', '701')`);
  await command(`INSERT INTO ${db}.ledger SELECT * FROM ${db}.ledger WHERE txn = '601' LIMIT 1`);
}

const summary = (found: readonly (Discrepancy | RefFinding)[]) => found.map((d) => `${d.type}${d.side ?? ''} ${d.key.join('/')}${d.count > 1 ? ` x${d.count}` : ''}${d.diffs.length ? ` ${d.diffs.map((f) => `${f.field}:${f.a}>${f.b}`).join(',')}` : ''}`).sort();

describe('batch reconciliation over ClickHouse', () => {
  it(`finds exactly the seeded discrepancies in ${ROWS} rows per side, and agrees with the reference diff`, async () => {
    const db = ch.db;
    // the edge rows really sit on the edge
    const edges = await (await client.query({ query: `SELECT toString(b.amt - a.amount) AS d FROM ${db}.bank AS a INNER JOIN ${db}.ledger AS b ON toString(a.txn) = b.txn WHERE a.txn IN (201, 203) ORDER BY a.txn`, format: 'JSONEachRow' })).json<{ d: string }>();
    expect(edges.map((e) => e.d)).toEqual(['0.01', '-0.01']);

    const definition = recon(db);
    const { discrepancies, stats } = await findBatchDiscrepancies(client, db, definition, DAY);
    const m = (txn: number) => `m${txn % 37}/${txn}`;
    expect(summary(discrepancies).map((s) => s.replace(/ amount:.*| fee:.*| status:.*/, ''))).toEqual(
      [
        ...[11, 12, 13, 14].map((t) => `MissingInB ${m(t)}`),
        'MissingInA m99/900001',
        'MissingInA m99/900002',
        ...[101, 102, 103, 301, 303, 401, 402].map((t) => `Mismatch ${m(t)}`),
        `DuplicateA ${m(501)} x2`,
        `DuplicateB ${m(601)} x3`,
        `DuplicateA ${m(701)} x2`,
        `DuplicateB ${m(701)} x2`,
      ].sort(),
    );
    const mismatch101 = discrepancies.find((d) => d.key[1] === '101')!;
    expect(mismatch101.diffs).toEqual([{ field: 'amount', a: mismatch101.a!.fields.amount, b: mismatch101.b!.fields.amount }]);
    expect(discrepancies.find((d) => d.key[1] === '301')!.diffs).toEqual([{ field: 'fee', a: expect.any(String), b: null }]);
    expect(stats).toMatchObject({ rowsA: ROWS + 2, rowsB: ROWS - 4 + 2 + 3 });
    expect(stats.rowsFetched).toBeLessThan(ROWS / 4);

    const reference = referenceDiff(definition, DAY, await allRecords(db, 'bank'), await allRecords(db, 'ledger'));
    expect(summary(discrepancies)).toEqual(summary(reference));
    expect(new Set(discrepancies.map((d) => d.id))).toEqual(new Set(reference.map((d) => discrepancyId(definition.name, DAY, d.type, d.side, d.key))));
  });

  it('reads a system through a query as well as a table', async () => {
    // the seeded tables of the file's fixture; the query hides B's refunded rows
    const definition = recon(ch.db, { b: { query: `SELECT merchant, txn, booked_at, amt, fee, status FROM ${ch.db}.ledger WHERE status != 'refunded'`, fields: { amount: 'amt' }, time: 'booked_at' } });
    const found = summary((await findBatchDiscrepancies(client, ch.db, definition, DAY)).discrepancies);
    expect(found.filter((f) => / m(31\/401|32\/402)/.test(f))).toEqual(['MissingInB m31/401', 'MissingInB m32/402']);
    expect(found).toHaveLength(17);
  });

  it('compares text amounts to decimals exactly, whatever the text', async () => {
    const db = `${ch.db}_text`;
    await command(`CREATE DATABASE ${db}`);
    await command(`CREATE TABLE ${db}.a (txn UInt32, occurred_at DateTime64(3, 'UTC'), amount Decimal(18, 2)) ENGINE = MergeTree ORDER BY txn`);
    await command(`CREATE TABLE ${db}.b (txn UInt32, occurred_at DateTime64(3, 'UTC'), amount Nullable(String)) ENGINE = MergeTree ORDER BY txn`);
    const texts = ['16', '16.00', '16.01', '16.02', ' 16', '0x10', '1.6e1', 'abc', null, '', '1e400', '-16'];
    const t = START + 3_600_000;
    await client.insert({ table: `${db}.a`, values: texts.map((_, txn) => ({ txn, occurred_at: t, amount: '16' })), format: 'JSONEachRow' });
    await client.insert({ table: `${db}.b`, values: texts.map((amount, txn) => ({ txn, occurred_at: t, amount })), format: 'JSONEachRow' });
    const definition = parseConfig({ reconciliations: [{ name: 'text', a: { table: 'a' }, b: { table: 'b' }, key: ['txn'], fields: { amount: { compare: 'absolute', tolerance: '0.01' } }, timeZone: 'Asia/Taipei' }] }).reconciliations[0]!;
    const found = (await findBatchDiscrepancies(client, db, definition, DAY)).discrepancies;
    expect(found.map((d) => `${d.type} ${JSON.stringify(d.b?.fields.amount)}`).sort()).toEqual(
      ['16.02', '0x10', 'abc', null, '', '1e400', '-16'].map((v) => `Mismatch ${JSON.stringify(v)}`).sort(),
    );
    await command(`DROP DATABASE ${db}`);
  });

  it('matches across midnight within the lag and gives each key to one day', async () => {
    const db = `${ch.db}_lag`;
    await command(`CREATE DATABASE ${db}`);
    await createTables(db);
    const nextDay = START + 86_400_000;
    const rows = [
      // A late on day 1, B 20 s later on day 2: one match, on day 1
      ['bank', 'k1', nextDay - 10_000], ['ledger', 'k1', nextDay + 10_000],
      // B lands beyond day 1's widened window: MissingInB on day 1, and day 2 leaves the key to day 1
      ['bank', 'k2', nextDay - 30_000], ['ledger', 'k2', nextDay + 75_000],
      // only in the margins: not day 1's
      ['ledger', 'k3', nextDay + 20_000], ['bank', 'k4', START - 20_000],
    ] as const;
    for (const [table, txn, t] of rows) {
      const time = table === 'bank' ? 'occurred_at' : 'booked_at';
      const amount = table === 'bank' ? 'amount' : 'amt';
      await command(`INSERT INTO ${db}.${table} (merchant, txn, ${time}, ${amount}, fee, status) VALUES ('m', {txn:String}, fromUnixTimestamp64Milli({t:Int64}, 'UTC'), 1, 1, 'paid')`, { txn: txn.slice(1), t });
    }
    const definition = recon(db);
    expect(summary((await findBatchDiscrepancies(client, db, definition, DAY)).discrepancies)).toEqual(['MissingInB m/2']);
    expect(summary((await findBatchDiscrepancies(client, db, definition, '2026-03-02')).discrepancies)).toEqual(['MissingInA m/3']);
    expect(summary((await findBatchDiscrepancies(client, db, definition, '2026-02-28')).discrepancies)).toEqual(['MissingInB m/4']);
    await command(`DROP DATABASE ${db}`);
  });

  it('equals the reference diff on random data near every tolerance edge (property, seeded)', async () => {
    let run = 0;
    const seen = new Set<string>();
    const cents = fc.integer({ min: -300, max: 300 });
    const row = fc.record({
      merchant: fc.constantFrom('a', 'b'),
      txn: fc.integer({ min: 1, max: 12 }),
      minute: fc.integer({ min: -3, max: 1_443 }),
      amount: cents,
      fee: fc.option(fc.integer({ min: 95, max: 105 }), { nil: null }),
      status: fc.constantFrom('paid', 'void'),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(row, { maxLength: 40 }), fc.array(fc.tuple(fc.nat(40), cents, fc.boolean()), { maxLength: 40 }), fc.array(row, { maxLength: 5 }), fc.boolean(), async (aRows, edits, extra, tiny) => {
        const db = `${ch.db}_p${run++}`;
        await command(`CREATE DATABASE ${db}`);
        await createTables(db);
        // B starts as a copy of A, then some rows move slightly (often to a tolerance edge) or vanish, then extras
        const bRows = aRows.flatMap((r, i) => {
          const edit = edits.find(([at]) => at === i);
          if (!edit) return [r];
          const [, delta, drop] = edit;
          // ±1 cent is the absolute edge (agrees), ±2 beyond; +0.01 on a fee near 1 straddles the 1% edge
          return drop ? [] : [{ ...r, amount: r.amount + (delta % 3), fee: r.fee === null ? null : r.fee + (delta % 5 === 0 ? 1 : 0), minute: r.minute + (delta % 2) }];
        }).concat(extra);
        const values = (rows: typeof aRows) => rows.map((r) => ({ merchant: r.merchant, txn: r.txn, t: START + r.minute * 60_000, amount: (r.amount / 100).toFixed(2), fee: r.fee === null ? null : (r.fee / 100).toFixed(2), status: r.status }));
        if (aRows.length) await client.insert({ table: `${db}.bank`, values: values(aRows).map((v) => ({ ...v, occurred_at: v.t, fee: v.fee ?? '0' })), format: 'JSONEachRow' });
        if (bRows.length) await client.insert({ table: `${db}.ledger`, values: values(bRows).map((v) => ({ ...v, txn: String(v.txn), booked_at: v.t, amt: v.amount })), format: 'JSONEachRow' });
        // tiny bisection settings force several levels and many pages
        const definition = recon(db, tiny ? { batch: { segments: 2, fanout: 2, fetchRows: 3, pageRows: 2 } } : {});
        const { discrepancies } = await findBatchDiscrepancies(client, db, definition, DAY);
        const reference = referenceDiff(definition, DAY, await allRecords(db, 'bank'), await allRecords(db, 'ledger'));
        expect(summary(discrepancies)).toEqual(summary(reference));
        for (const d of discrepancies) seen.add(`${d.type}${d.side ?? ''}`);
        await command(`DROP DATABASE ${db}`);
      }),
      { seed: 20261121, numRuns: 60 },
    );
    expect([...seen].sort()).toEqual(['DuplicateA', 'DuplicateB', 'Mismatch', 'MissingInA', 'MissingInB']);
  }, 240_000);
});
