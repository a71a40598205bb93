import { describe, expect, it } from 'vitest';
import { anyLineFeed, betweenJsonRows, rowChunks } from '../../src/clickhouse/http-server/body.ts';
import { bindQueryParams, unescapeTsv } from '../../src/clickhouse/http-server/query-params.ts';
import { analyzeStatement } from '../../src/clickhouse/http-server/sql.ts';

/** What the endpoint works out before the engine sees a request: the statement, its parameters, how to cut its data. */

const analyze = (text: string) => analyzeStatement(text, { complete: true });

describe('statement analysis', () => {
  it('finds the keyword and a trailing FORMAT clause, not a column called format', () => {
    expect(analyze('select 1 FORMAT JSONEachRow')).toMatchObject({ keyword: 'SELECT', format: 'JSONEachRow' });
    expect(analyze('SELECT 1 \nFORMAT JSON SETTINGS max_threads = 1')).toMatchObject({ format: 'JSON' });
    expect(analyze('SELECT format FROM t').format).toBeUndefined();
    expect(analyze('(SELECT 1)').keyword).toBe('SELECT');
    expect(analyze('  -- note\n/* block */ WITH 1 AS x SELECT x').keyword).toBe('WITH');
  });

  it('rejects a second statement wherever the engine would see one, and only there', () => {
    expect(() => analyze('SELECT 1; DROP TABLE t')).toThrow(/Multi-statements/);
    expect(() => analyze('SELECT 1 /* c */ ; -- x\n DROP TABLE t')).toThrow(/Multi-statements/);
    for (const single of ['SELECT 1;', 'SELECT 1;;  ', "SELECT ';' AS s", 'SELECT `a;b` FROM t', 'SELECT $$;$$', 'SELECT $q$;$q$', 'SELECT 1 /* /* */ ; SELECT 2 */', 'SELECT 1 # c ; SELECT 2\n', 'SELECT 1 -- ; x\n', "SELECT '\\'; x'"]) {
      expect(() => analyze(single), single).not.toThrow();
    }
  });

  it('flags files on the server', () => {
    expect(analyze("SELECT 1 INTO OUTFILE '/tmp/x'").touchesFiles).toBe(true);
    expect(analyze("INSERT INTO t FROM INFILE '/etc/passwd' FORMAT CSV").touchesFiles).toBe(true);
  });

  it('splits an INSERT into its SQL and where the data starts', () => {
    const text = 'INSERT INTO `db`.events (id, "name") SETTINGS async_insert = 0 FORMAT JSONEachRow  \n{"id":1}\n';
    const statement = analyze(text);
    expect(statement.insert).toEqual({ table: 'db.events', columns: ['id', 'name'], columnsExotic: false, settings: 'async_insert = 0', format: 'JSONEachRow', values: false });
    expect(text.slice(statement.dataStart)).toBe('{"id":1}\n');
    expect(text.slice(0, statement.end)).toBe('INSERT INTO `db`.events (id, "name") SETTINGS async_insert = 0 FORMAT JSONEachRow');
    expect(analyze('INSERT INTO t (* EXCEPT (a)) FORMAT CSV\n1').insert).toMatchObject({ columnsExotic: true });
    const values = 'INSERT INTO t VALUES (1), (2)';
    expect(values.slice(analyze(values).dataStart)).toBe(' (1), (2)');
    expect(analyze('INSERT INTO t SELECT * FROM u').dataStart).toBeUndefined();
    expect(() => analyze('INSERT INTO t FORMAT CSV;1,2')).toThrow(/excessive ';'/);
  });

  it('waits for more of a partial head before deciding where INSERT data starts', () => {
    expect(analyzeStatement('INSERT INTO t FORMAT JSONEach', { complete: false })).toBeUndefined();
    expect(analyzeStatement('INSERT INTO t FORMAT JSONEachRow\n{"a', { complete: false })?.dataStart).toBe(33);
    expect(analyzeStatement('SELECT 1', { complete: false })).toBeUndefined();
  });
});

describe('query parameters', () => {
  it('collects placeholders, including types with quotes and parentheses', () => {
    const statement = analyze("SELECT {a:UInt8}, {b: Enum8('x}' = 1)}, {'k': 1} AS map FROM {t:Identifier}");
    expect(statement.placeholders.map(({ name, type }) => [name, type])).toEqual([['a', 'UInt8'], ['b', "Enum8('x}' = 1)"], ['t', 'Identifier']]);
  });

  it('adapts escaped values so chDB binds exactly what a server would', () => {
    expect(unescapeTsv('a\\tb\\\\c\\x41\\\'')).toBe("a\tb\\cA'");
    const sql = 'SELECT {s:String}, {a:Array(String)}, {n:Nullable(UInt8)}, {plain:Array(String)}';
    const bound = bindQueryParams(sql, analyze(sql).placeholders, new Map([['s', 'x\\ty'], ['a', "['it\\'s']"], ['n', '\\N'], ['plain', "['a']"]]));
    expect(bound.params).toEqual({ s: 'x\ty', a: "['it's']", __tidemark_raw_a: "['it\\'s']", n: null, plain: "['a']" });
    expect(bound.sql).toBe('SELECT {s:String}, CAST({__tidemark_raw_a:String} AS Array(String)), {n:Nullable(UInt8)}, {plain:Array(String)}');
  });
});

describe('cutting insert data into pieces', () => {
  async function pieces(body: string, deliveredIn: number, size: number, boundary = anyLineFeed): Promise<string[]> {
    async function* delivery() {
      for (let i = 0; i < body.length; i += deliveredIn) yield Buffer.from(body.slice(i, i + deliveredIn));
    }
    const out: string[] = [];
    for await (const piece of rowChunks(delivery(), size, 1 << 20, boundary)) out.push(piece.toString());
    return out;
  }

  it('cuts at row boundaries near the size, the same way however the bytes arrived', async () => {
    const body = Array.from({ length: 50 }, (_, i) => `row\t${i}`).join('\n') + '\n';
    const byByte = await pieces(body, 1, 64);
    expect(byByte.join('')).toBe(body);
    expect(byByte.every((p) => p.endsWith('\n') && p.length <= 64)).toBe(true);
    expect(await pieces(body, 7, 64)).toEqual(byByte);
    expect(await pieces(body, body.length, 64)).toEqual(byByte);
  });

  it('never cuts inside a pretty-printed JSON row', async () => {
    const rows = Array.from({ length: 40 }, (_, i) => `{\n  "a": ${i},\n  "s": "x"\n}`);
    const body = rows.join('\n');
    const out = await pieces(body, 5, 50, betweenJsonRows);
    expect(out.join('')).toBe(body);
    expect(out.length).toBeGreaterThan(5);
    for (const piece of out) expect(piece.trim()).toMatch(/^\{[\s\S]*\}$/);
  });
});
