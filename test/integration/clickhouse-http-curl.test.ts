import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ChdbEngine } from '../../src/clickhouse/http-server/engine.ts';
import { ClickHouseServerError, ServerErrorCodes } from '../../src/clickhouse/http-server/errors.ts';
import { startClickHouseHttpServer, type ClickHouseHttpServer } from '../../src/clickhouse/http-server/server.ts';

/** The endpoint driven the way ClickHouse documents curl usage: plain HTTP requests, no client library. */

let dataDir: string;
let engine: ChdbEngine;
let open: ClickHouseHttpServer;
let guarded: ClickHouseHttpServer;
let counter = 0;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'tidemark-ch-http-'));
  engine = await ChdbEngine.open({ path: dataDir });
  open = await startClickHouseHttpServer({ engine, port: 0 });
  guarded = await startClickHouseHttpServer({
    engine,
    port: 0,
    users: [
      { name: 'alice', password: 's3cret' },
      { name: 'reader', password: 'look', readonly: true },
    ],
  });
});

afterAll(async () => {
  await open?.close();
  await guarded?.close();
  await engine?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

type Reply = { status: number; body: string; headers: Headers };

async function curl(server: ClickHouseHttpServer, path: string, init?: RequestInit): Promise<Reply> {
  const res = await fetch(server.url + path, init);
  return { status: res.status, body: await res.text(), headers: res.headers };
}

const q = (sql: string) => `/?query=${encodeURIComponent(sql)}`;
const post = (body: string | Buffer, headers: Record<string, string> = {}): RequestInit => ({ method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body), headers });
const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

/** A second server on the same engine that reads an insert's body in pieces of `insertChunkBytes`, for the time of `use`. */
async function withInsertChunks(insertChunkBytes: number, use: (server: ClickHouseHttpServer) => Promise<void>): Promise<void> {
  const small = await startClickHouseHttpServer({ engine, port: 0, insertChunkBytes });
  try {
    await use(small);
  } finally {
    await small.close();
  }
}

describe('ClickHouse HTTP interface, as curl uses it', () => {
  let db: string;
  beforeEach(async () => {
    db = `curl_${process.pid}_${++counter}`;
    expect((await curl(open, '/', post(`CREATE DATABASE ${db}`))).status).toBe(200);
    expect((await curl(open, '/', post(`CREATE TABLE ${db}.t (a UInt8, s String) ENGINE = MergeTree ORDER BY a`))).status).toBe(200);
  });

  it('answers health checks', async () => {
    expect(await curl(open, '/ping')).toMatchObject({ status: 200, body: 'Ok.\n' });
    expect(await curl(open, '/')).toMatchObject({ status: 200, body: 'Ok.\n' });
    const missing = await curl(open, '/nowhere');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatch(/There is no handle \/nowhere/);
  });

  it('runs GET /?query= and POST with the query in the body, TabSeparated by default', async () => {
    const get = await curl(open, q('SELECT 1, \'a\''));
    expect(get).toMatchObject({ status: 200, body: '1\ta\n' });
    expect(get.headers.get('content-type')).toBe('text/tab-separated-values; charset=UTF-8');
    expect(get.headers.get('x-clickhouse-format')).toBe('TabSeparated');
    expect(get.headers.get('x-clickhouse-query-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(get.headers.get('x-clickhouse-summary')!)).toHaveProperty('elapsed_ns');
    expect(await curl(open, '/', post('SELECT 1'))).toMatchObject({ status: 200, body: '1\n' });
    // The query parameter and the body are one text, joined by a line feed.
    expect(await curl(open, q('SELECT'), post('2'))).toMatchObject({ status: 200, body: '2\n' });
    expect(await curl(open, `${q('SELECT 3 AS x')}&default_format=JSONEachRow`)).toMatchObject({ body: '{"x":3}\n' });
    expect(await curl(open, q('SELECT 4 AS x'), { headers: { 'X-ClickHouse-Format': 'CSVWithNames' } })).toMatchObject({ body: '"x"\n4\n' });
    const withId = await curl(open, `${q('SELECT 5')}&query_id=my-query-1`);
    expect(withId.headers.get('x-clickhouse-query-id')).toBe('my-query-1');
  });

  it('inserts data sent after the query, in the URL or in the body', async () => {
    const urlInsert = await curl(open, q(`INSERT INTO ${db}.t FORMAT JSONEachRow`), post('{"a":1,"s":"one"}\n{"a":2,"s":"two"}\n'));
    expect(urlInsert.status).toBe(200);
    expect(urlInsert.body).toBe('');
    expect(JSON.parse(urlInsert.headers.get('x-clickhouse-summary')!)).toMatchObject({ written_rows: '2' });
    expect((await curl(open, '/', post(`INSERT INTO ${db}.t FORMAT JSONEachRow {"a":3,"s":"three"}\n`))).status).toBe(200);
    expect((await curl(open, '/', post(`INSERT INTO ${db}.t (a, s) VALUES (4, 'four; with a semicolon')`))).status).toBe(200);
    expect((await curl(open, q(`INSERT INTO ${db}.t VALUES`), post("(5, 'five')"))).status).toBe(200);
    expect((await curl(open, q(`INSERT INTO ${db}.t FORMAT TabSeparated`), post('6\tsix\n7\tseven\n'))).status).toBe(200);
    expect((await curl(open, q(`INSERT INTO ${db}.t FORMAT CSV`), post('8,"eight, quoted"\n'))).status).toBe(200);
    expect((await curl(open, q(`INSERT INTO ${db}.t SETTINGS async_insert = 0 FORMAT CSVWithNames`), post('"a","s"\n9,nine\n'))).status).toBe(200);
    const all = await curl(open, `/?database=${db}&query=${encodeURIComponent('SELECT a, s FROM t ORDER BY a FORMAT CSV')}`);
    expect(all.body).toBe('1,"one"\n2,"two"\n3,"three"\n4,"four; with a semicolon"\n5,"five"\n6,"six"\n7,"seven"\n8,"eight, quoted"\n9,"nine"\n');
  });

  it('streams a large insert in pieces and keeps every row', async () => {
    const lines = Array.from({ length: 200_000 }, (_, i) => `{"a":${i % 250},"s":"row ${i}"}`).join('\n');
    await withInsertChunks(256 * 1024, async (small) => {
      expect((await curl(small, q(`INSERT INTO ${db}.t FORMAT JSONEachRow`), post(lines))).status).toBe(200);
    });
    expect((await curl(open, q(`SELECT count(), uniqExact(s) FROM ${db}.t`))).body).toBe('200000\t200000\n');
  });

  it('streams pretty-printed JSONEachRow without cutting a row apart', async () => {
    const rows = Array.from({ length: 5_000 }, (_, i) => `{\n  "a": ${i % 250},\n  "s": "pretty ${i}"\n}`).join('\n');
    await withInsertChunks(16 * 1024, async (small) => {
      expect((await curl(small, q(`INSERT INTO ${db}.t FORMAT JSONEachRow`), post(rows))).status).toBe(200);
    });
    expect((await curl(open, q(`SELECT count(), uniqExact(s) FROM ${db}.t`))).body).toBe('5000\t5000\n');
  });

  it('keeps a dedup token insert whole', async () => {
    await curl(open, '/', post(`ALTER TABLE ${db}.t MODIFY SETTING non_replicated_deduplication_window = 100`));
    const lines = Array.from({ length: 30_000 }, (_, i) => `{"a":1,"s":"r${i}"}`).join('\n');
    await withInsertChunks(64 * 1024, async (small) => {
      const path = `${q(`INSERT INTO ${db}.t FORMAT JSONEachRow`)}&insert_deduplication_token=batch-1`;
      expect((await curl(small, path, post(lines))).status).toBe(200);
      expect((await curl(small, path, post(lines))).status).toBe(200);
    });
    expect((await curl(open, q(`SELECT count() FROM ${db}.t`))).body).toBe('30000\n');
  });

  it('reports errors like clickhouse-server', async () => {
    const unknown = await curl(open, q(`SELECT * FROM ${db}.missing`));
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('x-clickhouse-exception-code')).toBe('60');
    expect(unknown.body).toMatch(/^Code: 60\. DB::Exception: .*\(UNKNOWN_TABLE\) \(version [\d.]+\)\n$/);
    const syntax = await curl(open, '/', post('SELEC 1'));
    expect([syntax.status, syntax.headers.get('x-clickhouse-exception-code')]).toEqual([400, '62']);
    expect((await curl(open, '/', post('SELECT 1; SELECT 2'))).body).toMatch(/Multi-statements are not allowed/);
    expect((await curl(open, '/', post(''))).body).toMatch(/Code: 62.*Empty query/);
    const badSetting = await curl(open, `${q('SELECT 1')}&no_such_setting=1`);
    expect([badSetting.status, badSetting.headers.get('x-clickhouse-exception-code')]).toEqual([404, '115']);
    const badParse = await curl(open, q(`INSERT INTO ${db}.t FORMAT JSONEachRow`), post('{"a":"x"}\n'));
    expect(badParse.status).toBe(400);
    expect(badParse.body).toMatch(/CANNOT_PARSE/);
  });

  it('refuses modifications over GET, and files on the server', async () => {
    const viaGet = await curl(open, q(`CREATE TABLE ${db}.g (x UInt8) ENGINE = Memory`));
    expect([viaGet.status, viaGet.headers.get('x-clickhouse-exception-code')]).toEqual([500, '164']);
    expect(viaGet.body).toMatch(/method GET implies readonly/);
    const outfile = await curl(open, '/', post("SELECT 1 INTO OUTFILE '/tmp/tidemark-should-not-exist'"));
    expect([outfile.status, outfile.headers.get('x-clickhouse-exception-code')]).toEqual([403, '497']);
  });

  it('binds param_* URL parameters', async () => {
    const res = await curl(open, `/?param_id=2&param_phrase=${encodeURIComponent("it's\\there")}`, post('SELECT {id:UInt8} * 2 AS x, {phrase:String} AS p FORMAT JSONEachRow'));
    expect(res.body).toBe('{"x":4,"p":"it\'s\\there"}\n');
    const arr = await curl(open, `/?param_a=${encodeURIComponent("['it\\'s','b\\\\c']")}`, post('SELECT {a:Array(String)} AS a FORMAT JSONEachRow'));
    expect(arr.body).toBe('{"a":["it\'s","b\\\\c"]}\n');
  });

  it('decompresses gzip request bodies and compresses responses on request', async () => {
    const gz = await curl(open, q(`INSERT INTO ${db}.t FORMAT JSONEachRow`), post(gzipSync('{"a":42,"s":"zipped"}\n'), { 'Content-Encoding': 'gzip' }));
    expect(gz.status).toBe(200);
    expect((await curl(open, '/', post(gzipSync(`SELECT s FROM ${db}.t WHERE a = 42`), { 'Content-Encoding': 'gzip' }))).body).toBe('zipped\n');
    const raw = await new Promise<{ encoding?: string; body: Buffer }>((resolve, reject) => {
      const req = request(`${open.url}${q('SELECT number FROM numbers(3)')}&enable_http_compression=1`, { headers: { 'Accept-Encoding': 'gzip' } }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ ...(res.headers['content-encoding'] ? { encoding: res.headers['content-encoding'] } : {}), body: Buffer.concat(parts) }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(raw.encoding).toBe('gzip');
    expect(gunzipSync(raw.body).toString()).toBe('0\n1\n2\n');
    const corrupt = await curl(open, '/', post('not gzip at all', { 'Content-Encoding': 'gzip' }));
    expect(corrupt.headers.get('x-clickhouse-exception-code')).toBe('271');
  });

  it('runs concurrent clients without mixing their settings or rows', async () => {
    const inserts = Array.from({ length: 12 }, (_, k) =>
      curl(open, q(`INSERT INTO ${db}.t FORMAT JSONEachRow`), post(Array.from({ length: 1000 }, (_, i) => `{"a":${k},"s":"${k}-${i}"}`).join('\n'))),
    );
    const reads = Array.from({ length: 12 }, (_, k) => curl(open, `${q("SELECT getSetting('max_block_size')")}&max_block_size=${1000 + k}`));
    const replies = await Promise.all([...inserts, ...reads]);
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(replies.slice(12).map((r) => r.body)).toEqual(Array.from({ length: 12 }, (_, k) => `${1000 + k}\n`));
    expect((await curl(open, q(`SELECT count(), uniqExact(s) FROM ${db}.t`))).body).toBe('12000\t12000\n');
  });

  it('answers /ping while the engine is busy', async () => {
    // six scans fill the engine's threads twice over; a ping that waited for the engine
    // would come back only after the last of them, however fast or slow the machine is
    let finished = 0;
    const heavy = Array.from({ length: 6 }, () => curl(open, '/', post('SELECT sum(cityHash64(number)) FROM numbers(200000000)')).then((r) => { finished++; return r; }));
    expect((await curl(open, '/ping')).body).toBe('Ok.\n');
    const finishedAtPing = finished;
    expect((await Promise.all(heavy)).every((r) => r.status === 200)).toBe(true);
    expect(finishedAtPing).toBeLessThan(heavy.length);
  });

  it('stops a streamed query when the client goes away', async () => {
    const abort = new AbortController();
    const res = await fetch(open.url + q('SELECT number FROM numbers(200000000)'), { signal: abort.signal });
    const reader = res.body!.getReader();
    expect((await reader.read()).value!.length).toBeGreaterThan(0);
    abort.abort();
    await reader.read().catch(() => undefined);
    expect((await curl(open, q('SELECT 42'))).body).toBe('42\n');
  });

  it('refuses a second query with a running query id', async () => {
    let slowDone = false;
    const slow = curl(open, `${q('SELECT sleep(3)')}&query_id=dup-${db}`).finally(() => { slowDone = true; });
    // the slow query may not be claimed yet when a second is sent (or, rarely, a second may get
    // there first): send seconds until one of the two overlapping queries is refused
    let code: string | null = null;
    while (!slowDone && code !== '216') code = (await curl(open, `${q('SELECT 1')}&query_id=dup-${db}`)).headers.get('x-clickhouse-exception-code');
    const slowCode = (await slow).headers.get('x-clickhouse-exception-code');
    expect([code, slowCode]).toContain('216');
    // once the slow one has finished, the id is free again
    expect((await curl(open, `${q('SELECT 1')}&query_id=dup-${db}`)).body).toBe('1\n');
  });
});

describe('authentication and the read-only user', () => {
  it('accepts Basic auth, X-ClickHouse headers and URL parameters', async () => {
    expect((await curl(guarded, q('SELECT currentUser() = currentUser()'), { headers: basic('alice', 's3cret') })).body).toBe('1\n');
    expect((await curl(guarded, q('SELECT 1'), { headers: { 'X-ClickHouse-User': 'alice', 'X-ClickHouse-Key': 's3cret' } })).body).toBe('1\n');
    expect((await curl(guarded, `${q('SELECT 1')}&user=alice&password=s3cret`)).body).toBe('1\n');
  });

  it('refuses wrong or missing credentials with AUTHENTICATION_FAILED', async () => {
    const wrong = await curl(guarded, q('SELECT 1'), { headers: basic('alice', 'nope') });
    expect([wrong.status, wrong.headers.get('x-clickhouse-exception-code')]).toEqual([403, '516']);
    expect(wrong.body).toMatch(/^Code: 516\. DB::Exception: alice: Authentication failed.*\(AUTHENTICATION_FAILED\)/);
    const unknown = await curl(guarded, q('SELECT 1'), { headers: basic('mallory', 's3cret') });
    expect(unknown.status).toBe(403);
    const none = await curl(guarded, q('SELECT 1'));
    expect([none.status, none.headers.get('x-clickhouse-exception-code')]).toEqual([401, '516']);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic/);
    const mixed = await curl(guarded, `${q('SELECT 1')}&user=alice&password=s3cret`, { headers: basic('alice', 's3cret') });
    expect(mixed.body).toMatch(/not allowed to use Authorization HTTP header and authentication via parameters simultaneously/);
    // Health checks stay open, as on a server.
    expect((await curl(guarded, '/ping')).body).toBe('Ok.\n');
  });

  it('lets the read-only user read and nothing else', async () => {
    const reader = basic('reader', 'look');
    const db = `ro_${process.pid}`;
    expect((await curl(guarded, '/', post(`CREATE DATABASE ${db}`, basic('alice', 's3cret')))).status).toBe(200);
    expect((await curl(guarded, '/', post(`CREATE TABLE ${db}.t (x UInt8) ENGINE = Memory`, basic('alice', 's3cret')))).status).toBe(200);
    expect((await curl(guarded, '/', post(`SELECT count() FROM ${db}.t`, reader))).body).toBe('0\n');
    expect((await curl(guarded, '/', post(`SHOW TABLES FROM ${db}`, reader))).body).toBe('t\n');
    expect((await curl(guarded, '/', post(`DESCRIBE TABLE ${db}.t FORMAT TSV`, reader))).body).toMatch(/^x\tUInt8/);
    expect((await curl(guarded, '/', post('EXPLAIN SELECT 1', reader))).status).toBe(200);
    expect((await curl(guarded, '/', post('WITH 2 AS n SELECT n', reader))).body).toBe('2\n');
    for (const sql of [`INSERT INTO ${db}.t VALUES (1)`, `DROP TABLE ${db}.t`, `CREATE TABLE ${db}.u (x UInt8) ENGINE = Memory`, 'SET max_threads = 1', 'SYSTEM FLUSH LOGS']) {
      const refused = await curl(guarded, '/', post(sql, reader));
      expect([sql, refused.status, refused.headers.get('x-clickhouse-exception-code')]).toEqual([sql, 500, '164']);
    }
    // The engine enforces it too: no settings override, no table functions that reach outside.
    expect((await curl(guarded, '/', post('SELECT 1 SETTINGS readonly = 0', reader))).headers.get('x-clickhouse-exception-code')).toBe('164');
    expect((await curl(guarded, '/', post("SELECT * FROM file('/etc/hostname', LineAsString)", reader))).headers.get('x-clickhouse-exception-code')).toBe('497');
    expect((await curl(guarded, `/?readonly=0&query=${encodeURIComponent(`INSERT INTO ${db}.t VALUES (1)`)}`, post('', reader))).headers.get('x-clickhouse-exception-code')).toBe('164');
  });

  it('refuses a non-loopback bind unless every user has a password', async () => {
    const refused = startClickHouseHttpServer({ engine, host: '0.0.0.0', port: 0 });
    await expect(refused).rejects.toBeInstanceOf(ClickHouseServerError);
    await expect(refused).rejects.toMatchObject({ code: ServerErrorCodes.INSECURE_BIND });
    await expect(startClickHouseHttpServer({ engine, host: '0.0.0.0', port: 0, users: [{ name: 'a', password: 'x' }, { name: 'b' }] })).rejects.toMatchObject({
      code: ServerErrorCodes.INSECURE_BIND,
    });
    const ok = await startClickHouseHttpServer({ engine, host: '0.0.0.0', port: 0, users: [{ name: 'a', password: 'x' }] });
    await ok.close();
  });
});
