import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChdbEngine } from '../../src/clickhouse/http-server/engine.ts';
import { prepareSession } from '../../src/clickhouse/http-server/execute.ts';
import { parseRequest } from '../../src/clickhouse/http-server/request.ts';
import { startClickHouseHttpServer, type ClickHouseHttpServer } from '../../src/clickhouse/http-server/server.ts';

/**
 * Issue 20, point 1: nothing that reaches the embedded endpoint over GET, or as a read-only user,
 * writes — whatever settings it carries. Each writing statement is tried against every
 * combination of URL settings and caller, then the data is fingerprinted; the same statement
 * then runs over POST as a full user (the positive control: the refusal is not a broken statement).
 */

let dataDir: string;
let scratch: string;
let engine: ChdbEngine;
let server: ClickHouseHttpServer;

const ALICE = { Authorization: `Basic ${Buffer.from('alice:s3cret').toString('base64')}` };
const READER = { Authorization: `Basic ${Buffer.from('reader:look').toString('base64')}` };

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'tidemark-sec-ch-'));
  scratch = mkdtempSync(join(tmpdir(), 'tidemark-sec-files-'));
  engine = await ChdbEngine.open({ path: dataDir });
  server = await startClickHouseHttpServer({ engine, port: 0, users: [{ name: 'alice', password: 's3cret' }, { name: 'reader', password: 'look', readonly: true }] });
});

afterAll(async () => {
  await server?.close();
  await engine?.close();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

type Reply = { status: number; code: string | null; body: string };

async function send(method: 'GET' | 'POST', sql: string, settings: string, headers: Record<string, string>): Promise<Reply> {
  const url = `${server.url}/?${settings}${settings ? '&' : ''}query=${encodeURIComponent(sql)}`;
  const res = await fetch(url, { method, headers });
  return { status: res.status, code: res.headers.get('x-clickhouse-exception-code'), body: await res.text() };
}

const admin = async (sql: string): Promise<string> => {
  const reply = await send('POST', sql, '', ALICE);
  if (reply.status !== 200) throw new Error(`${sql}: ${reply.body}`);
  return reply.body;
};

async function setUp(db: string): Promise<void> {
  await admin(`CREATE DATABASE ${db}`);
  await admin(`CREATE TABLE ${db}.events (id UInt32, s String) ENGINE = MergeTree ORDER BY id`);
  await admin(`INSERT INTO ${db}.events VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
  await admin(`CREATE TABLE ${db}.other (x UInt8) ENGINE = MergeTree ORDER BY x`);
  await admin(`CREATE TABLE ${db}.parked (x UInt8) ENGINE = MergeTree ORDER BY x`);
  await admin(`DETACH TABLE ${db}.parked PERMANENTLY`);
}

/** Everything a writing statement could change: tables, their columns and rows, databases, functions. */
const fingerprint = (db: string): Promise<string> =>
  admin(
    `SELECT (SELECT groupArray((name, engine, total_rows)) FROM (SELECT * FROM system.tables WHERE database = '${db}' ORDER BY name)),
            (SELECT groupArray((table, name, type)) FROM (SELECT * FROM system.columns WHERE database = '${db}' ORDER BY table, name)),
            (SELECT groupArray(id || s) FROM (SELECT * FROM ${db}.events ORDER BY id)),
            (SELECT groupArray(name) FROM (SELECT name FROM system.databases ORDER BY name)),
            (SELECT groupArray(name) FROM (SELECT name FROM system.functions WHERE origin = 'SQLUserDefined' ORDER BY name))
     FORMAT TSV`,
  );

/** Writing statements; `control: false` where chDB or the endpoint refuses it even to a full user (so only the refusal is checked). */
const WRITES = (db: string, file: string): Array<{ sql: string; control?: false }> => [
  { sql: `CREATE TABLE ${db}.n (x UInt8) ENGINE = Memory` },
  { sql: `CREATE DATABASE ${db}_new` },
  { sql: `CREATE VIEW ${db}.v AS SELECT 1` },
  { sql: `CREATE FUNCTION ${db}_f AS x -> x + 1` },
  { sql: `CREATE USER ${db}_u` , control: false },
  { sql: `REPLACE TABLE ${db}.events (x UInt8) ENGINE = Memory AS SELECT 1` },
  { sql: `CREATE OR REPLACE TABLE ${db}.events (x UInt8) ENGINE = Memory AS SELECT 1` },
  { sql: `ALTER TABLE ${db}.events ADD COLUMN z UInt8` },
  { sql: `ALTER TABLE ${db}.events DELETE WHERE 1 SETTINGS mutations_sync = 2` },
  { sql: `ALTER TABLE ${db}.events UPDATE s = 'x' WHERE 1 SETTINGS mutations_sync = 2` },
  { sql: `DELETE FROM ${db}.events WHERE id = 1` },
  { sql: `DROP TABLE ${db}.events` },
  { sql: `DROP DATABASE ${db}` },
  { sql: `TRUNCATE TABLE ${db}.events` },
  { sql: `RENAME TABLE ${db}.events TO ${db}.renamed` },
  { sql: `EXCHANGE TABLES ${db}.events AND ${db}.other` },
  { sql: `DETACH TABLE ${db}.events` },
  { sql: `ATTACH TABLE ${db}.parked` },
  { sql: `INSERT INTO ${db}.events VALUES (9, 'z')` },
  { sql: `INSERT INTO ${db}.events SELECT 9, 'z'` },
  // Refused to every user since file() reaches outside the database (see 'queries stay inside the database').
  { sql: `INSERT INTO FUNCTION file('${file}', 'CSV', 'x UInt8') VALUES (1)`, control: false },
  { sql: `OPTIMIZE TABLE ${db}.events FINAL` },
  { sql: 'SYSTEM DROP MARK CACHE' },
  { sql: 'KILL QUERY WHERE 0' },
  { sql: `GRANT SELECT ON ${db}.* TO alice`, control: false },
  { sql: `BACKUP TABLE ${db}.events TO Disk('default', '${db}.zip')`, control: false },
  { sql: `  /* a comment first */ dRoP tAbLe ${db}.events` },
  { sql: `(SELECT 1) ; DROP TABLE ${db}.events`, control: false },
];

/** URL settings a request may carry to try to lift read-only. */
const URL_SETTINGS = ['', 'readonly=0', 'readonly=1', 'readonly=2', 'allow_ddl=1', 'readonly=0&allow_ddl=1', 'max_execution_time=0&readonly=0', 'readonly=2&readonly=0'];

/** Who sends it and how; every one of these must be refused whatever it carries. */
const CALLERS: Array<{ name: string; method: 'GET' | 'POST'; headers: Record<string, string>; settings?: (s: string) => boolean }> = [
  { name: 'full user over GET', method: 'GET', headers: ALICE },
  { name: 'read-only user over GET', method: 'GET', headers: READER },
  { name: 'read-only user over POST', method: 'POST', headers: READER },
  // A full user's POST writes unless its own settings make it read-only; the engine must honour them.
  { name: 'full user over POST with readonly set', method: 'POST', headers: ALICE, settings: (s) => /readonly=[12]/.test(s) && !/readonly=0/.test(s) },
];

describe('the ClickHouse endpoint never writes for a read-only request', () => {
  it.each(WRITES('sec_db', '/tmp/x').map((w, i) => [i, w.sql]))('statement %i is refused in every case: %s', async (i) => {
    const db = `sec_${process.pid}_${i}`;
    const file = join(scratch, `${db}.csv`);
    const write = WRITES(db, file)[i as number]!;
    await setUp(db);
    const before = await fingerprint(db);
    const outcomes: string[] = [];
    for (const caller of CALLERS) {
      for (const settings of URL_SETTINGS.filter(caller.settings ?? (() => true))) {
        const reply = await send(caller.method, write.sql, settings, caller.headers);
        // Refused with a ClickHouse error; the code is READONLY except where a check before it answers (multi-statements: SYNTAX_ERROR; file(): ACCESS_DENIED).
        if (reply.status === 200 || reply.code === null) outcomes.push(`${caller.name} ?${settings}: ${reply.status} ${reply.body}`);
      }
    }
    expect(outcomes).toEqual([]);
    expect(await fingerprint(db)).toBe(before);
    expect(existsSync(file)).toBe(false);
    if (write.control !== false) {
      const control = await send('POST', write.sql, '', ALICE);
      expect([control.status, control.body]).toEqual([200, expect.any(String)]);
      const changed = await fingerprint(db).catch(() => 'database gone');
      const cacheOrNoop = /^(SYSTEM|KILL|OPTIMIZE)/.test(write.sql.trim());
      if (!cacheOrNoop) expect(changed !== before || existsSync(file)).toBe(true);
    }
    await admin(`DROP DATABASE IF EXISTS ${db}`);
    await admin(`DROP DATABASE IF EXISTS ${db}_new`);
    await admin(`DROP FUNCTION IF EXISTS ${db}_f`);
  });

  it('refuses every write with READONLY (164), and over GET with ClickHouse\'s hint to use POST', async () => {
    const db = `sec_${process.pid}_codes`;
    await setUp(db);
    const viaGet = await send('GET', `REPLACE TABLE ${db}.events (x UInt8) ENGINE = Memory AS SELECT 1`, 'readonly=0', ALICE);
    expect([viaGet.status, viaGet.code]).toEqual([500, '164']);
    expect(viaGet.body).toMatch(/^Code: 164\. DB::Exception: .*\(READONLY\)/);
    const reader = await send('POST', `DROP TABLE ${db}.events`, '', READER);
    expect([reader.status, reader.code]).toEqual([500, '164']);
    await admin(`DROP DATABASE ${db}`);
  });
});

describe('settings a read-only request may not change', () => {
  const read = "SELECT getSetting('readonly'), getSetting('max_execution_time')";

  it('a GET cannot lower readonly, from the URL or in the query', async () => {
    for (const settings of ['readonly=0', 'readonly=1']) {
      const reply = await send('GET', read, settings, ALICE);
      expect([settings, reply.code, reply.body]).toEqual([settings, '164', expect.stringMatching(/Cannot modify 'readonly' setting in readonly mode/)]);
    }
    expect((await send('GET', `${read} SETTINGS readonly = 0`, '', ALICE)).code).toBe('164');
    // readonly=2 is what a GET already runs under; other settings may change, as on a ClickHouse server.
    expect((await send('GET', read, 'readonly=2&max_execution_time=7', ALICE)).body).toBe('2\t7\n');
    expect((await send('POST', read, '', ALICE)).body).toBe('0\t0\n');
  });

  it('a read-only user cannot raise limits or lift read-only, over GET or POST', async () => {
    for (const method of ['GET', 'POST'] as const) {
      for (const settings of ['readonly=0', 'readonly=2', 'allow_ddl=0', 'max_execution_time=100000', 'max_memory_usage=99999999999', 'max_threads=1000', 'max_result_rows=5&result_overflow_mode=break']) {
        const reply = await send(method, read, settings, READER);
        expect([method, settings, reply.code]).toEqual([method, settings, '164']);
        expect(reply.body).toMatch(/Cannot modify '\w+' setting in readonly mode/);
      }
      expect((await send(method, `${read} SETTINGS max_execution_time = 100000`, '', READER)).code).toBe('164');
      // Reading still works, and a setting sent at the value in force is no change.
      expect((await send(method, read, 'readonly=1', READER)).body).toBe('1\t0\n');
    }
  });

  it('the engine itself holds read-only once the session is prepared: no setting list lifts it', async () => {
    const db = `sec_${process.pid}_engine`;
    await setUp(db);
    const cases: Array<[string, { name: string; readonly: boolean }]> = [
      ['GET', { name: 'alice', readonly: false }],
      ['POST', { name: 'reader', readonly: true }],
    ];
    for (const [method, caller] of cases) {
      for (const settings of ['', 'max_threads=2', 'allow_ddl=1']) {
        const url = new URL(`http://localhost/?${settings}`);
        const parsed = parseRequest({ method, headers: {} } as never, url);
        const session = engine.session();
        try {
          const rest = await prepareSession(session, parsed, caller, undefined);
          // Bypass the endpoint's own statement check: the engine must refuse on its own.
          const attempt = session.query(`${rest ? `${rest}; ` : ''}DROP TABLE ${db}.events`, { format: 'TabSeparated' });
          await expect(attempt).rejects.toMatchObject({ message: expect.stringMatching(/READONLY|readonly mode/) });
        } finally {
          session.close();
        }
      }
    }
    expect(await admin(`EXISTS TABLE ${db}.events`)).toBe('1\n');
    await admin(`DROP DATABASE ${db}`);
  });
});

describe('queries stay inside the database (no files, servers or programs), for every user', () => {
  let web: Server;
  let webUrl: string;
  let hits = 0;

  beforeAll(async () => {
    web = createServer((_req, res) => {
      hits++;
      res.end('secret-from-web\n');
    });
    await new Promise<void>((ready) => web.listen(0, '127.0.0.1', ready));
    webUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}/`;
  });

  afterAll(async () => {
    web?.closeAllConnections();
    await new Promise((done) => web?.close(done));
  });

  const CALLERS_ALL: Array<{ name: string; headers: Record<string, string> }> = [
    { name: 'alice', headers: ALICE },
    { name: 'reader', headers: READER },
  ];

  const READS_OUTSIDE = (url: string): string[] => [
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM file('/etc/passwd', LineAsString) FORMAT JSONEachRow",
    "SELECT file('/etc/passwd')",
    "select * from `FILE`('/etc/passwd', 'LineAsString')",
    "WITH (SELECT groupArray(line) FROM file('/etc/passwd', 'LineAsString')) AS x SELECT x",
    "SELECT * FROM numbers(1) AS a, (SELECT * FROM file('/etc/passwd', 'LineAsString')) AS b",
    "DESCRIBE file('/etc/passwd', 'LineAsString')",
    "EXPLAIN SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM file('/etc/pass{wd}', 'LineAsString') SETTINGS readonly = 2",
    `SELECT * FROM url('${url}', 'LineAsString')`,
    `SELECT * FROM urlCluster('default', '${url}', 'LineAsString')`,
    `SELECT * FROM s3('${url}x.csv', 'LineAsString')`,
    `SELECT * FROM remote('127.0.0.1', system.one)`,
    `SELECT * FROM mysql('127.0.0.1:1', 'd', 't', 'u', 'p')`,
    `SELECT * FROM postgresql('127.0.0.1:1', 'd', 't', 'u', 'p')`,
    `SELECT * FROM executable('cat /etc/passwd', 'LineAsString', 'line String')`,
    `SELECT * FROM hdfs('hdfs://127.0.0.1:1/x', 'LineAsString')`,
    `SELECT * FROM filesystem('/etc')`,
  ];

  it('reading /etc/passwd or a local web server is refused over GET and POST, with any URL settings', async () => {
    const outcomes: string[] = [];
    for (const sql of READS_OUTSIDE(webUrl)) {
      for (const caller of CALLERS_ALL) {
        for (const method of ['GET', 'POST'] as const) {
          for (const settings of ['', 'readonly=0', 'readonly=2']) {
            const reply = await send(method, sql, settings, caller.headers);
            const refused = reply.status === 403 && reply.code === '497' && !/root:|secret-from-web/.test(reply.body);
            // Settings that would lower readonly are refused first (164): also a refusal, before anything runs.
            const lowers = (settings === 'readonly=0' && (method === 'GET' || caller.name === 'reader')) || (caller.name === 'reader' && settings !== '') || /SETTINGS readonly/.test(sql);
            const settingsRefused = lowers && reply.code === '164' && !/root:|secret-from-web/.test(reply.body);
            if (!refused && !settingsRefused) outcomes.push(`${caller.name} ${method} ?${settings} ${sql}: ${reply.status} ${reply.code} ${reply.body.slice(0, 120)}`);
          }
        }
      }
    }
    expect(outcomes).toEqual([]);
    // The refusal comes before the engine runs anything: the web server was never asked.
    expect(hits).toBe(0);
  });

  it('the same url() query, run on the engine directly, does reach the web server (the refusal is the endpoint\'s)', async () => {
    const session = engine.session();
    try {
      const result = await session.query(`SELECT * FROM url('${webUrl}', 'LineAsString')`, { format: 'TSV' });
      expect(result.text()).toBe('secret-from-web\n');
    } finally {
      session.close();
    }
    expect(hits).toBeGreaterThan(0);
    hits = 0;
  });

  it('a full user cannot write a file, create a table or dictionary over a file or URL, back up to a file, or evaluate file() in VALUES', async () => {
    const db = `sec_${process.pid}_outside`;
    await setUp(db);
    const target = join(scratch, `${db}.out`);
    const before = await fingerprint(db);
    const writes = [
      `INSERT INTO FUNCTION file('${target}', 'CSV', 'x UInt8') VALUES (1)`,
      `INSERT INTO FUNCTION url('${webUrl}', 'CSV', 'x UInt8') SELECT 1`,
      `CREATE TABLE ${db}.f (line String) ENGINE = File(LineAsString, '/etc/passwd')`,
      `CREATE TABLE ${db}.u (line String) ENGINE = URL('${webUrl}', LineAsString)`,
      `CREATE TABLE ${db}.x (line String) ENGINE = Executable('cat /etc/passwd', LineAsString)`,
      `CREATE TABLE ${db}.c AS file('/etc/passwd', 'LineAsString')`,
      `CREATE TABLE ${db}.k (x UInt8) ENGINE = MergeTree ORDER BY x SETTINGS disk = disk(type = web, endpoint = '${webUrl}')`,
      `CREATE DATABASE ${db}_fs ENGINE = Filesystem('/etc')`,
      `CREATE DICTIONARY ${db}.d (line String) PRIMARY KEY line SOURCE(FILE(path '/etc/passwd' format 'LineAsString')) LAYOUT(FLAT()) LIFETIME(0)`,
      `BACKUP TABLE ${db}.events TO File('${target}')`,
      `INSERT INTO ${db}.events VALUES (7, file('/etc/passwd'))`,
      `INSERT INTO ${db}.events (id, s) VALUES (8, 'fine'), (7, FILE ( '/etc/passwd' ))`,
    ];
    const outcomes: string[] = [];
    for (const sql of writes) {
      const reply = await send('POST', sql, '', ALICE);
      if (reply.status !== 403 || reply.code !== '497') outcomes.push(`${sql}: ${reply.status} ${reply.code} ${reply.body.slice(0, 160)}`);
    }
    // VALUES arriving as the request body (the usual way a client sends them).
    const body = await fetch(`${server.url}/?query=${encodeURIComponent(`INSERT INTO ${db}.events VALUES`)}`, { method: 'POST', headers: ALICE, body: "(7, file('/etc/passwd'))" });
    if (body.status !== 403) outcomes.push(`VALUES in the body: ${body.status} ${await body.text()}`);
    expect(outcomes).toEqual([]);
    expect(await fingerprint(db)).toBe(before);
    expect(existsSync(target)).toBe(false);
    expect(hits).toBe(0);
    // Data that only mentions a name, and local table functions, are fine.
    expect((await send('POST', `INSERT INTO ${db}.events VALUES (7, 'file(/etc/passwd)')`, '', ALICE)).status).toBe(200);
    expect(await admin(`SELECT s FROM ${db}.events WHERE id = 7`)).toBe('file(/etc/passwd)\n');
    expect((await send('GET', 'SELECT sum(number) FROM numbers(4)', '', READER)).body).toBe('6\n');
    expect((await send('GET', "SELECT * FROM values('x UInt8', 1, 2) FORMAT CSV", '', ALICE)).body).toBe('1\n2\n');
    expect((await send('GET', "SELECT count() FROM (SELECT * FROM generateRandom('a UInt8') LIMIT 3)", '', ALICE)).body).toBe('3\n');
    await admin(`DROP DATABASE ${db}`);
  });

  it('another SQL dialect is refused (the check reads ClickHouse SQL)', async () => {
    const reply = await send('POST', "from `file`('/etc/passwd')", 'dialect=prql', ALICE);
    expect([reply.status, reply.code]).toEqual([403, '497']);
  });

  it('a misspelled statement over GET gets the engine\'s syntax error (62), not READONLY', async () => {
    for (const headers of [ALICE, READER]) {
      const reply = await send('GET', 'SELEC 1', '', headers);
      expect([reply.status, reply.code]).toEqual([400, '62']);
      expect(reply.body).toMatch(/Syntax error/);
    }
    // A well-formed write over GET is still READONLY.
    expect((await send('GET', 'DROP TABLE nowhere.nothing', '', ALICE)).code).toBe('164');
  });
});
