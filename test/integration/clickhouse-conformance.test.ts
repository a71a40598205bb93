import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BASE_SETTINGS, clickHouseTarget, openClickHouse } from '../../src/clickhouse/client.ts';
import { ChdbEngine } from '../../src/clickhouse/http-server/engine.ts';
import { serveEmbeddedClickHouse, startClickHouseHttpServer, type ClickHouseHttpServer } from '../../src/clickhouse/http-server/server.ts';
import { testConfig } from '../harness/config.ts';

/**
 * The same ClickHouse-facing behaviour through both ways Tidemark reaches the embedded engine:
 * chDB in process (openClickHouse from client.ts) and @clickhouse/client by URL against the HTTP
 * endpoint that serves that engine. One data directory per process, shared by both.
 */

type Backend = 'in-process' | 'http';

let dataDir: string;
let config: ReturnType<typeof testConfig>;
let engine: ChdbEngine;
let server: ClickHouseHttpServer;
const clients = {} as Record<Backend, ClickHouseClient>;
let counter = 0;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'tidemark-conformance-'));
  config = testConfig({ dataDir });
  clients['in-process'] = openClickHouse(config);
  const target = clickHouseTarget(config);
  if (target.kind !== 'embedded') throw new Error('the test config must be embedded');
  engine = await ChdbEngine.open({ path: target.path });
  server = await startClickHouseHttpServer({ engine, port: 0 });
  clients.http = createClient({ url: server.url, clickhouse_settings: BASE_SETTINGS, log: { level: 127 as never } });
});

afterAll(async () => {
  await clients.http?.close();
  await clients['in-process']?.close();
  await server?.close();
  await engine?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** What a ClickHouseError carries, whichever copy of the class threw it. */
async function failure(promise: Promise<unknown>): Promise<{ code: string; type: string }> {
  try {
    await promise;
  } catch (err) {
    const { code, type } = err as { code?: unknown; type?: unknown };
    return { code: String(code), type: String(type) };
  }
  throw new Error('expected the call to fail');
}

describe.each(['in-process', 'http'] as const)('ClickHouse through %s', (backend: Backend) => {
  const client = () => clients[backend];
  let db: string;

  beforeEach(async () => {
    db = `conf_${backend === 'http' ? 'http' : 'local'}_${process.pid}_${++counter}`;
    await client().command({ query: `CREATE DATABASE ${db}` });
    await client().command({
      query: `CREATE TABLE ${db}.t (id UInt32, name String, amount Decimal(38, 10), at DateTime64(3, 'UTC'), tags Array(String)) ENGINE = MergeTree ORDER BY id`,
    });
  });

  afterEach(async () => {
    await client().command({ query: `DROP DATABASE IF EXISTS ${db}` });
  });

  const rows = [
    { id: 1, name: "O'Brien", amount: '129.90', at: '2026-11-20 05:05:00.123', tags: ['a', "it's"] },
    { id: 2, name: 'tab\there', amount: '0.0000000001', at: '2026-11-20 06:00:00.000', tags: [] },
    { id: 3, name: 'back\\slash', amount: '12345678901234567890.1234567890', at: '2026-11-21 00:00:00.000', tags: ['x'] },
  ];

  it('pings', async () => {
    expect((await client().ping()).success).toBe(true);
  });

  it('inserts JSONEachRow and reads every format back', async () => {
    await client().insert({ table: `${db}.t`, values: rows, format: 'JSONEachRow' });
    const query = `SELECT id, name FROM ${db}.t ORDER BY id`;
    expect(await (await client().query({ query, format: 'JSONEachRow' })).json()).toEqual(rows.map(({ id, name }) => ({ id, name })));
    const json = await (await client().query({ query, format: 'JSON' })).json<{ id: number; name: string }>();
    expect(json.data.map((r) => r.name)).toEqual(rows.map((r) => r.name));
    expect(json.meta).toEqual([{ name: 'id', type: 'UInt32' }, { name: 'name', type: 'String' }]);
    expect(await (await client().query({ query, format: 'JSONCompactEachRow' })).json()).toEqual(rows.map(({ id, name }) => [id, name]));
    expect(await (await client().query({ query, format: 'CSV' })).text()).toBe(`1,"O'Brien"\n2,"tab\there"\n3,"back\\slash"\n`);
    expect(await (await client().query({ query, format: 'TabSeparated' })).text()).toBe(`1\tO\\'Brien\n2\ttab\\there\n3\tback\\\\slash\n`);
  });

  it('inserts with a column list, JSONCompactEachRow (the client default) and a stream', async () => {
    await client().insert({ table: `${db}.t`, values: [[7, 'seven']], columns: ['id', 'name'] });
    await client().insert({ table: `${db}.t`, values: Readable.from([{ id: 8, name: 'eight' }, { id: 9, name: 'nine' }]), format: 'JSONEachRow' });
    const got = await (await client().query({ query: `SELECT id, name, amount FROM ${db}.t ORDER BY id`, format: 'JSONEachRow' })).json();
    expect(got).toEqual([
      { id: 7, name: 'seven', amount: '0' },
      { id: 8, name: 'eight', amount: '0' },
      { id: 9, name: 'nine', amount: '0' },
    ]);
  });

  it('keeps decimals exact end to end', async () => {
    await client().insert({ table: `${db}.t`, values: rows, format: 'JSONEachRow' });
    const [sum] = await (await client().query({ query: `SELECT sum(amount) AS total, toString(max(amount)) AS top FROM ${db}.t`, format: 'JSONEachRow' })).json<{ total: string; top: string }>();
    expect(sum).toEqual({ total: '12345678901234568020.0234567891', top: '12345678901234567890.123456789' });
  });

  it('binds query parameters of every shape, quotes and backslashes included', async () => {
    await client().insert({ table: `${db}.t`, values: rows, format: 'JSONEachRow' });
    const byName = await client().query({ query: `SELECT id FROM ${db}.t WHERE name = {name:String}`, query_params: { name: "O'Brien" }, format: 'JSONEachRow' });
    expect(await byName.json()).toEqual([{ id: 1 }]);
    const special = await client().query({
      query: 'SELECT {s:String} AS s, {n:Nullable(String)} AS n, {a:Array(String)} AS a, {d:Decimal(38, 10)} AS d, {t:DateTime64(3)} AS t, {m:Map(String, UInt8)} AS m',
      query_params: { s: "tab\tnew\nline back\\ 'q'", n: null, a: ["it's", 'b\\c'], d: '1.0000000001', t: '2026-11-20 05:05:00.123', m: { k: 1 } },
      format: 'JSONEachRow',
    });
    expect(await special.json()).toEqual([{ s: "tab\tnew\nline back\\ 'q'", n: null, a: ["it's", 'b\\c'], d: '1.0000000001', t: '2026-11-20 05:05:00.123', m: { k: 1 } }]);
    const inList = await client().query({ query: `SELECT id FROM ${db}.t WHERE id IN {ids:Array(UInt32)} ORDER BY id`, query_params: { ids: [1, 3] }, format: 'JSONEachRow' });
    expect(await inList.json()).toEqual([{ id: 1 }, { id: 3 }]);
  });

  it('reports engine errors with their ClickHouse code and type', async () => {
    expect(await failure(client().query({ query: `SELECT * FROM ${db}.missing` }))).toEqual({ code: '60', type: 'UNKNOWN_TABLE' });
    expect(await failure(client().query({ query: 'SELEC 1' }))).toEqual({ code: '62', type: 'SYNTAX_ERROR' });
    expect(await failure(client().command({ query: `CREATE TABLE ${db}.t (x UInt8) ENGINE = Memory` }))).toEqual({ code: '57', type: 'TABLE_ALREADY_EXISTS' });
    // in process, parameters are written into the statement as typed literals (src/clickhouse/inline-params.ts): a bad value fails as the cast of that literal
    const badParameter = backend === 'in-process' ? { code: '6', type: 'CANNOT_PARSE_TEXT' } : { code: '457', type: 'BAD_QUERY_PARAMETER' };
    expect(await failure(client().query({ query: 'SELECT {x:UInt8}', query_params: { x: 'zz' } }))).toEqual(badParameter);
    expect(await failure(client().query({ query: 'SELECT {x:UInt8}' }))).toEqual({ code: '456', type: 'UNKNOWN_QUERY_PARAMETER' });
    expect(await failure(client().insert({ table: `${db}.t`, values: [{ id: 'not a number' }], format: 'JSONEachRow' }))).toMatchObject({ type: expect.stringMatching(/CANNOT_PARSE|INCORRECT_DATA/) });
    expect(await failure(client().query({ query: "SELECT throwIf(1, 'boom')" }))).toEqual({ code: '395', type: 'FUNCTION_THROW_IF_VALUE_IS_NON_ZERO' });
  });

  it('applies per-call settings', async () => {
    const rs = await client().query({ query: "SELECT toString(getSetting('max_threads')) AS n, toString(getSetting('max_block_size')) AS b", format: 'JSONEachRow', clickhouse_settings: { max_threads: 1, max_block_size: '1234' } });
    expect(await rs.json()).toEqual([{ n: '1', b: '1234' }]);
    expect(await failure(client().query({ query: 'SELECT 1', clickhouse_settings: { no_such_setting: 1 } as never }))).toEqual({ code: '115', type: 'UNKNOWN_SETTING' });
  });

  it('runs exec with and without values, and echoes the query id', async () => {
    const created = await client().exec({ query: `CREATE TABLE ${db}.e (x UInt8) ENGINE = Memory`, query_id: `conf-${backend}-${counter}` });
    created.stream.resume();
    expect(created.query_id).toBe(`conf-${backend}-${counter}`);
    const inserted = await client().exec({ query: `INSERT INTO ${db}.e FORMAT TabSeparated`, values: Readable.from(['1\n2\n']) });
    inserted.stream.resume();
    const count = await (await client().query({ query: `SELECT sum(x) AS s FROM ${db}.e`, format: 'JSONEachRow' })).json();
    expect(count).toEqual([{ s: '3' }]);
  });

  it('inserts a 10k-row batch and streams a large result', async () => {
    const batch = Array.from({ length: 10_000 }, (_, i) => ({ id: i, name: `n${i}`, amount: `${i}.5`, at: '2026-11-20 00:00:00.000', tags: [] }));
    await client().insert({ table: `${db}.t`, values: batch, format: 'JSONEachRow' });
    const [agg] = await (await client().query({ query: `SELECT count() AS c, sum(amount) AS s FROM ${db}.t`, format: 'JSONEachRow' })).json<{ c: string; s: string }>();
    expect(agg).toEqual({ c: '10000', s: '50000000' });
    let seen = 0;
    const stream = (await client().query({ query: 'SELECT number FROM numbers(300000)', format: 'JSONCompactEachRow' })).stream();
    for await (const batchRows of stream) seen += (batchRows as unknown[]).length;
    expect(seen).toBe(300_000);
  });
});

describe('only over HTTP', () => {
  it('starts every request from the server defaults: settings do not leak between calls', async () => {
    const http = clients.http;
    const first = await http.query({ query: "SELECT toString(getSetting('max_threads')) AS n", format: 'JSONEachRow', clickhouse_settings: { max_threads: 1 } });
    expect(await first.json()).toEqual([{ n: '1' }]);
    const second = await http.query({ query: "SELECT toString(getSetting('max_threads')) AS n, getSetting('async_insert') AS a", format: 'JSONEachRow' });
    const [row] = await second.json<{ n: string; a: boolean }>();
    expect(row!.n).not.toBe('1');
    expect(row!.a).toBe(false);
  });

  it('uses the database URL parameter', async () => {
    const scoped = createClient({ url: server.url, database: 'system' });
    try {
      const rs = await scoped.query({ query: 'SELECT currentDatabase() AS db', format: 'JSONEachRow' });
      expect(await rs.json()).toEqual([{ db: 'system' }]);
    } finally {
      await scoped.close();
    }
  });

  it('compresses requests and responses when the client asks', async () => {
    const gz = createClient({ url: server.url, compression: { request: true, response: true } });
    try {
      const db = `conf_gzip_${process.pid}`;
      await gz.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` });
      await gz.command({ query: `CREATE TABLE ${db}.t (x UInt32) ENGINE = Memory` });
      await gz.insert({ table: `${db}.t`, values: Array.from({ length: 1000 }, (_, x) => ({ x })), format: 'JSONEachRow' });
      const rs = await gz.query({ query: `SELECT toString(sum(x)) AS s FROM ${db}.t`, format: 'JSONEachRow' });
      expect(rs.response_headers['content-encoding']).toBe('gzip');
      expect(await rs.json()).toEqual([{ s: '499500' }]);
      await gz.command({ query: `DROP DATABASE ${db}` });
    } finally {
      await gz.close();
    }
  });

  it('sends long query parameters as multipart and binds them', async () => {
    const long = 'x'.repeat(10_000);
    const rs = await clients.http.query({ query: 'SELECT length({s:String}) AS n', query_params: { s: long }, format: 'JSONEachRow', use_multipart_params: true });
    expect(await rs.json()).toEqual([{ n: '10000' }]);
  });

  it('raises an error that happens after the first rows were sent', async () => {
    const rs = await clients.http.query({
      query: "SELECT number, throwIf(number = 250000, 'late failure') AS x FROM numbers(300000) SETTINGS max_block_size = 1000",
      format: 'JSONEachRow',
    });
    expect(await failure(rs.json())).toEqual({ code: '395', type: 'FUNCTION_THROW_IF_VALUE_IS_NON_ZERO' });
  });

  it('serves the configured embedded engine for `tidemark up`, and nothing when CLICKHOUSE_URL is set', async () => {
    const served = await serveEmbeddedClickHouse(config, { port: 0 });
    try {
      expect(served?.path).toBe(join(dataDir, 'clickhouse'));
      const rs = await fetch(`${served!.url}/?query=${encodeURIComponent('SELECT count() > 0 FROM system.databases')}`);
      expect(await rs.text()).toBe('1\n');
    } finally {
      await served?.close();
    }
    expect(await serveEmbeddedClickHouse(testConfig({ dataDir }, { CLICKHOUSE_URL: 'http://127.0.0.1:1' }))).toBeUndefined();
  });
});
