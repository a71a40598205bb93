import type { ServerResponse } from 'node:http';
import type { ChdbResult, RawInsertFormat } from 'chdb';
import { collect, isBlank, rowChunks } from './body.ts';
import type { ChdbEngine, EngineSession } from './engine.ts';
import { CH, ClickHouseHttpError, toClickHouseError } from './errors.ts';
import { canonicalFormat, insertPath, isBinaryFormat, rowBoundaryOf, type InsertPath } from './formats.ts';
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
  /** Streamed inserts are cut at row boundaries into pieces of about this size, one engine insert each. */
  insertChunkBytes: number;
};

/** What a read-only user (and a GET request) may run. */
const READ_KEYWORDS = new Set(['SELECT', 'WITH', 'SHOW', 'DESCRIBE', 'DESC', 'EXISTS', 'EXPLAIN']);
/**
 * Statements a GET (or HEAD) refuses up front with ClickHouse's hint to use POST; anything else
 * runs under readonly=2, so the engine still refuses what this list misses.
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
  // As in ClickHouse, anything but POST is read-only.
  if (method !== 'POST' && WRITE_KEYWORDS.has(statement.keyword)) {
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
  if (parsed.method !== 'POST' && !caller.readonly) settings.push(['readonly', '2']);
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
function insertRoute(statement: Statement, parsed: ParsedRequest): InsertPath {
  const target = statement.insert;
  if (!target?.format || target.values || !target.table || !PLAIN_NAME.test(target.table)) return 'inline';
  if (target.columnsExotic || !(target.columns ?? []).every((c) => PLAIN_NAME.test(c)) || statement.placeholders.length > 0) return 'inline';
  const path = insertPath(canonicalFormat(target.format));
  // A dedup token names one insert: cut into pieces, every piece after the first would be dropped as its duplicate.
  const token = parsed.params.settings.has('insert_deduplication_token') || /insert_deduplication_token/i.test(target.settings ?? '');
  return path === 'chunked' && token ? 'raw' : path;
}

/** How a statement runs: a streamed SELECT, one buffered engine call, or an INSERT's data route. */
type Plan = 'stream' | 'buffer' | InsertPath;

function plan(incoming: IncomingStatement, parsed: ParsedRequest): Plan {
  const { statement } = incoming;
  if (incoming.data) return insertRoute(statement, parsed);
  const streamable = STREAMED_KEYWORDS.has(statement.keyword) && statement.placeholders.length === 0;
  return streamable && !parsed.waitEndOfQuery ? 'stream' : 'buffer';
}

const elapsedSince = (start: bigint): number => Number(process.hrtime.bigint() - start);

type Run = {
  res: ServerResponse;
  parsed: ParsedRequest;
  incoming: IncomingStatement;
  session: EngineSession;
  meta: ResponseMeta;
  started: bigint;
  ctx: ExecuteContext;
  /** The preamble, for paths that send it in the same engine call as the statement. */
  setup?: string;
};

/**
 * One buffered engine call for `sql` with its placeholders bound. Buffered calls take several
 * statements, so the preamble rides along instead of costing a round trip.
 */
function runSql(run: Run, sql: string): Promise<ChdbResult> {
  const { placeholders } = run.incoming.statement;
  const bound = placeholders.length > 0 ? bindQueryParams(sql, placeholders, run.incoming.queryParams) : undefined;
  const text = bound?.sql ?? sql;
  return run.session.query(run.setup ? `${run.setup}; ${text}` : text, { format: run.meta.format, ...(bound ? { params: bound.params } : {}) });
}

async function sendWhole(run: Run, summary: Summary, bytes?: Uint8Array): Promise<void> {
  const body = startResponse(run.res, run.meta, { ...summary, elapsed_ns: elapsedSince(run.started) }, { streaming: false });
  if (bytes && bytes.length > 0) body.out.write(bytes);
  await body.end();
}

/** An INSERT whose data bypasses the SQL: zero-copy raw inserts, in line-cut pieces or one buffer. */
async function runRawInsert(run: Run, path: 'chunked' | 'raw', target: InsertTarget, data: AsyncIterable<Buffer>): Promise<void> {
  const summary = emptySummary();
  const format = canonicalFormat(target.format!) as RawInsertFormat;
  const pieces =
    path === 'chunked' ? rowChunks(data, run.ctx.insertChunkBytes, run.ctx.maxBufferedBytes, rowBoundaryOf(format)) : [await collect(data, run.ctx.maxBufferedBytes)];
  for await (const piece of pieces) {
    if (isBlank(piece)) continue;
    const written = await run.session.insert(target.table!, target.columns, format, piece);
    summary.read_rows += written.rowsWritten;
    summary.read_bytes += piece.length;
    summary.written_rows += written.rowsWritten;
    summary.written_bytes += written.bytesWritten;
  }
  await sendWhole(run, summary);
}

/** An INSERT whose data must go inline in the SQL text (VALUES, other text formats, table functions…). */
async function runInlineInsert(run: Run, data: AsyncIterable<Buffer>): Promise<void> {
  const { statement, text } = run.incoming;
  const format = statement.insert?.format;
  if (format && isBinaryFormat(format)) {
    throw new ClickHouseHttpError(CH.NOT_IMPLEMENTED, `Inserting ${format} over this endpoint is not supported: chDB takes inline data as text. Use a text format (JSONEachRow, TabSeparated, CSV…)`);
  }
  const rows = await collect(data, run.ctx.maxBufferedBytes);
  if (isBlank(rows)) return sendWhole(run, emptySummary());
  await runSql(run, `${text.slice(0, statement.end)}\n${rows.toString('utf8')}`);
  return sendWhole(run, emptySummary());
}

async function runBuffered(run: Run): Promise<void> {
  const { statement, text } = run.incoming;
  const result = await runSql(run, text.slice(0, statement.end));
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

/** Runs one statement on its own connection and answers the request; errors before the first byte are thrown. */
export async function execute(res: ServerResponse, parsed: ParsedRequest, caller: Caller, incoming: IncomingStatement, ctx: ExecuteContext): Promise<void> {
  const { statement, data } = incoming;
  checkPolicy(statement, caller, parsed.method);
  const how = plan(incoming, parsed);
  const session = ctx.engine.session();
  try {
    const started = process.hrtime.bigint();
    const rawInsert = how === 'chunked' || how === 'raw';
    const setup = preamble(parsed, caller, rawInsert ? statement.insert?.settings : undefined);
    // A stream and a raw insert take exactly one statement, so their preamble is a call of its own.
    const separate = how === 'stream' || rawInsert;
    if (setup && separate) await session.query(setup, { format: 'TabSeparated' });
    const meta: ResponseMeta = {
      queryId: parsed.queryId,
      format: statement.format ?? parsed.defaultFormat,
      timezone: ctx.engine.timezone,
      level: parsed.compressionLevel,
      ...(parsed.coding ? { coding: parsed.coding } : {}),
    };
    const run: Run = { res, parsed, incoming, session, meta, started, ctx, ...(setup && !separate ? { setup } : {}) };
    if (how === 'stream') await runStreamed(run);
    else if (how === 'buffer') await runBuffered(run);
    else if (how === 'inline') await runInlineInsert(run, data!);
    else await runRawInsert(run, how, statement.insert!, data!);
  } finally {
    session.close();
  }
}
