import type { ServerResponse } from 'node:http';
import type { RawInsertFormat } from 'chdb';
import { collect, lineChunks } from './body.ts';
import type { ChdbEngine, EngineSession } from './engine.ts';
import { CH, ClickHouseHttpError, toClickHouseError } from './errors.ts';
import { canonicalFormat, insertPath, isBinaryFormat, type InsertPath } from './formats.ts';
import { bindQueryParams } from './query-params.ts';
import type { IncomingStatement, ParsedRequest } from './request.ts';
import { emptySummary, startResponse, streamedExceptionBlock, write, type ResponseMeta, type Summary } from './response.ts';
import { SERVER_DEFAULTS, setStatement } from './settings.ts';
import type { InsertTarget, Statement } from './sql.ts';

export type Caller = { name: string; readonly: boolean };

export type ExecuteContext = {
  engine: ChdbEngine;
  /** Largest body kept in memory whole: a statement, or insert data that cannot be streamed. */
  maxBufferedBytes: number;
  /** Streamed inserts are cut at line feeds into pieces of about this size, one engine insert each. */
  insertChunkBytes: number;
};

/** What a read-only user (and a GET request) may run. */
const READ_KEYWORDS = new Set(['SELECT', 'WITH', 'SHOW', 'DESCRIBE', 'DESC', 'EXISTS', 'EXPLAIN']);
/**
 * Statements a GET refuses up front with ClickHouse's hint to use POST; anything else runs under
 * readonly=2, so the engine still refuses what this list misses.
 */
const WRITE_KEYWORDS = new Set([
  'INSERT', 'CREATE', 'DROP', 'ALTER', 'TRUNCATE', 'RENAME', 'OPTIMIZE', 'DELETE', 'UPDATE', 'ATTACH', 'DETACH',
  'EXCHANGE', 'UNDROP', 'SYSTEM', 'KILL', 'GRANT', 'REVOKE', 'BACKUP', 'RESTORE', 'MOVE',
]);
/** Queries whose result is streamed; chDB streams nothing else (SHOW, DESCRIBE… are buffered). */
const STREAMED_KEYWORDS = new Set(['SELECT', 'WITH']);
/** chDB's raw insert takes plain dotted names only. */
const PLAIN_NAME = /^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/;

function checkPolicy(statement: Statement, caller: Caller, method: string): void {
  if (statement.touchesFiles) {
    throw new ClickHouseHttpError(CH.ACCESS_DENIED, 'INTO OUTFILE and FROM INFILE are client-side features: this endpoint does not read or write files for a query');
  }
  const reads = READ_KEYWORDS.has(statement.keyword);
  if (caller.readonly && !reads) throw new ClickHouseHttpError(CH.READONLY, `${caller.name}: Cannot execute query in readonly mode`);
  if (method === 'GET' && WRITE_KEYWORDS.has(statement.keyword)) {
    throw new ClickHouseHttpError(
      CH.READONLY,
      `${caller.name}: Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. You should use method POST for modifying queries`,
    );
  }
}

const quoteIdentifier = (name: string): string => `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;

/**
 * The statements that put a fresh connection in the state the request describes: read-only for
 * GET (before the URL settings, as ClickHouse applies it), server defaults, URL settings, an
 * INSERT's own SETTINGS when its data bypasses the SQL, the database, and read-only for a
 * read-only user (last, so nothing after it can lift it).
 */
function preamble(parsed: ParsedRequest, caller: Caller, insertSettings: string | undefined): string | undefined {
  const settings: Array<[string, string]> = [];
  if (parsed.method === 'GET' && !caller.readonly) settings.push(['readonly', '2']);
  for (const [name, value] of SERVER_DEFAULTS) if (!parsed.params.settings.has(name)) settings.push([name, value]);
  settings.push(...parsed.params.settings);
  const statements = [setStatement(settings)];
  if (insertSettings) statements.push(`SET ${insertSettings}`);
  if (parsed.database) statements.push(`USE ${quoteIdentifier(parsed.database)}`);
  if (caller.readonly) statements.push('SET readonly = 1');
  const sql = statements.filter((s): s is string => s !== undefined).join('; ');
  return sql || undefined;
}

/** How an INSERT's data reaches the engine (see formats.ts), given what its SQL allows. */
function choosePath(statement: Statement, parsed: ParsedRequest): InsertPath {
  const target = statement.insert;
  if (!target?.format || target.values || !target.table || !PLAIN_NAME.test(target.table)) return 'inline';
  if (target.columnsExotic || !(target.columns ?? []).every((c) => PLAIN_NAME.test(c)) || statement.placeholders.length > 0) return 'inline';
  const path = insertPath(canonicalFormat(target.format));
  // A dedup token names one insert: cut into pieces, every piece after the first would be dropped as its duplicate.
  const token = parsed.params.settings.has('insert_deduplication_token') || /insert_deduplication_token/i.test(target.settings ?? '');
  return path === 'chunked' && token ? 'raw' : path;
}

const elapsedSince = (start: bigint): number => Number(process.hrtime.bigint() - start);

const isBlank = (bytes: Uint8Array): boolean => bytes.every((b) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d);

type Run = { res: ServerResponse; parsed: ParsedRequest; incoming: IncomingStatement; session: EngineSession; meta: ResponseMeta; started: bigint; ctx: ExecuteContext };

async function sendWhole(run: Run, summary: Summary, bytes?: Uint8Array): Promise<void> {
  const body = startResponse(run.res, run.meta, { ...summary, elapsed_ns: elapsedSince(run.started) }, { streaming: false });
  if (bytes && bytes.length > 0) body.out.write(bytes);
  await body.end();
}

async function insertData(run: Run, path: Exclude<InsertPath, 'inline'>, target: InsertTarget, data: AsyncIterable<Buffer>): Promise<Summary> {
  const summary = emptySummary();
  const format = canonicalFormat(target.format!) as RawInsertFormat;
  const pieces = path === 'chunked' ? lineChunks(data, run.ctx.insertChunkBytes, run.ctx.maxBufferedBytes) : [await collect(data, run.ctx.maxBufferedBytes)];
  for await (const piece of pieces) {
    if (isBlank(piece)) continue;
    const written = await run.session.insert(target.table!, target.columns, format, piece);
    summary.read_rows += written.rowsWritten;
    summary.read_bytes += piece.length;
    summary.written_rows += written.rowsWritten;
    summary.written_bytes += written.bytesWritten;
  }
  return summary;
}

async function runInsert(run: Run, data: AsyncIterable<Buffer>): Promise<void> {
  const { statement, text } = run.incoming;
  const path = choosePath(statement, run.parsed);
  if (path !== 'inline') return sendWhole(run, await insertData(run, path, statement.insert!, data));
  const format = statement.insert?.format;
  if (format && isBinaryFormat(format)) {
    throw new ClickHouseHttpError(CH.NOT_IMPLEMENTED, `Inserting ${format} over this endpoint is not supported: chDB takes inline data as text. Use a text format (JSONEachRow, TabSeparated, CSV…)`);
  }
  const rows = await collect(data, run.ctx.maxBufferedBytes);
  if (isBlank(rows)) return sendWhole(run, emptySummary());
  const sql = `${text.slice(0, statement.end)}\n${rows.toString('utf8')}`;
  const bound = statement.placeholders.length > 0 ? bindQueryParams(sql, statement.placeholders, run.incoming.queryParams) : undefined;
  await run.session.query(bound?.sql ?? sql, { format: run.meta.format, ...(bound ? { params: bound.params } : {}) });
  return sendWhole(run, emptySummary());
}

async function runBuffered(run: Run): Promise<void> {
  const { statement, text, queryParams } = run.incoming;
  const sql = text.slice(0, statement.end);
  const bound = statement.placeholders.length > 0 ? bindQueryParams(sql, statement.placeholders, queryParams) : undefined;
  const result = await run.session.query(bound?.sql ?? sql, { format: run.meta.format, ...(bound ? { params: bound.params } : {}) });
  const bytes = result.bytes();
  await sendWhole(run, { ...emptySummary(), read_rows: result.rowsRead, read_bytes: result.bytesRead, result_rows: result.rowsRead, result_bytes: bytes.length }, bytes);
}

/**
 * Streams a SELECT. The first chunk is fetched before the 200 goes out, so errors found while
 * planning or starting the query (most of them) still get their status code; a later error is
 * appended as ClickHouse's tagged exception block.
 */
async function runStreamed(run: Run): Promise<void> {
  const { res, session, meta, incoming, ctx } = run;
  const chunks = session.stream(incoming.text.slice(0, incoming.statement.end), meta.format);
  const first = await chunks.next();
  const body = startResponse(res, meta, { ...emptySummary(), elapsed_ns: elapsedSince(run.started) }, { streaming: true });
  try {
    if (!first.done) await write(res, body.out, first.value);
    for await (const chunk of chunks) await write(res, body.out, chunk);
  } catch (err) {
    if (res.destroyed) return;
    await write(res, body.out, streamedExceptionBlock(toClickHouseError(err), ctx.engine.version, body.tag!)).catch(() => undefined);
  }
  await body.end();
}

/** Runs one statement on its own connection and answers the request. Throws before anything is sent. */
export async function execute(res: ServerResponse, parsed: ParsedRequest, caller: Caller, incoming: IncomingStatement, ctx: ExecuteContext): Promise<void> {
  const { statement } = incoming;
  checkPolicy(statement, caller, parsed.method);
  const session = ctx.engine.session();
  try {
    const started = process.hrtime.bigint();
    const fast = incoming.data !== undefined && choosePath(statement, parsed) !== 'inline';
    const setup = preamble(parsed, caller, fast ? statement.insert?.settings : undefined);
    if (setup) await session.query(setup, { format: 'TabSeparated' });
    const meta: ResponseMeta = {
      queryId: parsed.queryId,
      format: statement.format ?? parsed.defaultFormat,
      timezone: ctx.engine.timezone,
      level: parsed.compressionLevel,
      ...(parsed.coding ? { coding: parsed.coding } : {}),
    };
    const run: Run = { res, parsed, incoming, session, meta, started, ctx };
    if (incoming.data) await runInsert(run, incoming.data);
    else if (STREAMED_KEYWORDS.has(statement.keyword) && statement.placeholders.length === 0 && !parsed.waitEndOfQuery) await runStreamed(run);
    else await runBuffered(run);
  } finally {
    session.close();
  }
}
