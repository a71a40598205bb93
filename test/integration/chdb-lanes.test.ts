import { join } from 'node:path';
import { createChdbConnection } from 'chdb/connection';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanQueryId } from '../../src/clickhouse/client.ts';
import { inlineParams } from '../../src/clickhouse/inline-params.ts';
import { useTestClickHouse } from '../harness/clickhouse.ts';

const ch = useTestClickHouse();

const text = async (result: { stream: AsyncIterable<unknown> }): Promise<string> => {
  let out = '';
  for await (const chunk of result.stream) out += String(chunk);
  return out;
};

describe('query parameters inlined for the embedded engine', () => {
  it('give the same values as chDB binding them', async () => {
    // chDB's own binder, on a connection of its own to the same engine: the oracle
    const oracle = createChdbConnection({ path: join(ch.dataDir, 'clickhouse') });
    try {
      const cases = fc.oneof(
        fc.string({ unit: 'binary', maxLength: 40 }).map((v) => ({ type: 'String', v: v as unknown })),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((v) => ({ type: 'UInt64', v: v as unknown })),
        fc.integer().map((v) => ({ type: 'Int64', v: v as unknown })),
        fc.integer({ min: -128, max: 127 }).map((v) => ({ type: 'Int8', v: v as unknown })),
        fc.array(fc.string({ maxLength: 12 }), { maxLength: 6 }).map((v) => ({ type: 'Array(String)', v: v as unknown })),
        fc.array(fc.nat(), { maxLength: 6 }).map((v) => ({ type: 'Array(UInt64)', v: v as unknown })),
        fc.date({ min: new Date('1971-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }).map((d) => ({ type: 'Date', v: d.toISOString().slice(0, 10) as unknown })),
      );
      for (const { type, v } of fc.sample(cases, { numRuns: 150, seed: 26 })) {
        const query = `SELECT {v:${type}} AS v, toTypeName(v) AS t FORMAT JSONEachRow`;
        const bound = await text(await oracle.query({ query, query_params: { v } } as never));
        const inlined = await text(await oracle.query({ query: inlineParams(query, { v }) } as never));
        expect(inlined, `${type} ${JSON.stringify(String(v))}`).toBe(bound);
      }
    } finally {
      await oracle.close();
    }
  }, 120_000);

  it('leaves a placeholder it has no value for', () => {
    expect(inlineParams('SELECT {a:String}, {b:UInt8}', { a: "x'" })).toBe("SELECT _CAST('x\\'', 'String'), {b:UInt8}");
  });
});

describe('the embedded engine\'s lanes', () => {
  it('a long scan holds up neither a short parameterised read nor a write', async () => {
    await ch.client.command({ query: `CREATE TABLE ${ch.db}.lane_writes (n UInt64) ENGINE = MergeTree ORDER BY n` });
    // sleeps, not CPU: as long on a loaded machine as on a quiet one; parameterised, as
    // the revisor's scans are (chDB would otherwise run every parameterised call after it)
    const scan = (rows: number) => ch.client.query({
      query: 'SELECT sum(sleepEachRow({s:Float64})) AS x FROM numbers({n:UInt64}) SETTINGS max_block_size = 1',
      query_params: { s: 0.5, n: rows }, query_id: scanQueryId(), format: 'JSONEachRow',
    }).then((r) => r.json());
    let scansDone = 0;
    const scans = Promise.all([scan(12), scan(12)]).then(() => scansDone++);
    const shortRead = async () => (await (await ch.client.query({ query: 'SELECT {a:UInt64} + 1 AS x', query_params: { a: 41 }, format: 'JSONEachRow' })).json<{ x: string }>())[0]!.x;
    const read: string[] = [];
    for (let i = 0; i < 5; i++) {
      read.push(await shortRead());
      await ch.client.insert({ table: `${ch.db}.lane_writes`, values: [{ n: i }], format: 'JSONEachRow' });
    }
    // five reads and five writes landed while the first of the two scans (6 s of sleep each, one after the other) still ran
    expect(scansDone).toBe(0);
    expect(read).toEqual(Array(5).fill('42'));
    const written = await (await ch.client.query({ query: `SELECT count() AS n FROM ${ch.db}.lane_writes`, format: 'JSONEachRow' })).json<{ n: string }>();
    expect(written).toEqual([{ n: '5' }]);
    await scans;
  }, 120_000);
});
