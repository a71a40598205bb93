import type { ServerResponse } from 'node:http';
import type { ChdbResult, RawInsertFormat } from 'chdb';
import { collect, isBlank, rowChunks } from './body.ts';
import type { ChdbEngine, EngineSession } from './engine.ts';
import { CH, ClickHouseHttpError, toClickHouseError } from './errors.ts';
import { canonicalFormat, insertPath, isBinaryFormat, rowBoundaryOf, type InsertPath } from './formats.ts';
import { checkAst, checkCalls, SETTING_VALUE_CALLS } from './external-access.ts';
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

/**
 * What a read-only caller (a read-only user, or any GET or HEAD) may send: an allow-list, so a
 * statement kind nobody thought of is refused rather than let through. The engine's own
 * read-only mode (see `readonlyLevel`) is the guarantee; this list adds what chDB's read-only
 * mode lets pass (`INSERT INTO FUNCTION file(…)`, `KILL QUERY`, measured on chDB 26.7) and
 * ClickHouse's hint for GET.
 */
const READ_KEYWORDS = new Set(['SELECT', 'WITH', 'SHOW', 'DESCRIBE', 'DESC', 'EXISTS', 'EXPLAIN']);
/** Queries whose result is streamed; chDB streams nothing else (SHOW, DESCRIBE… are buffered). */
const STREAMED_KEYWORDS = new Set(['SELECT', 'WITH']);
/** chDB's raw insert takes plain dotted names only. */
const PLAIN_NAME = /^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/;

const GET_HINT = 'For queries over HTTP, method GET implies readonly. You should use method POST for modifying queries';

/**
 * The engine's read-only level for this request: 1 for a read-only user (no setting may change,
 * as a `readonly = 1` profile in ClickHouse), 2 for any other GET or HEAD (settings may change
 * except `readonly` itself, as ClickHouse's HTTP handler does for GET), none for a POST.
 */
function readonlyLevel(caller: Caller, method: string): 1 | 2 | undefined {
  if (caller.readonly) return 1;
  return method === 'POST' ? undefined : 2;
}

/**
 * A request is read-only when the engine will be locked, or when a POST asks for it itself with a
 * `readonly` URL setting: the statement check then applies too, since chDB's read-only mode lets
 * some writes pass.
 */
function readsOnly(caller: Caller, parsed: ParsedRequest): boolean {
  const asked = parsed.params.settings.get('readonly');
  return readonlyLevel(caller, parsed.method) !== undefined || (asked !== undefined && !/^\s*(0|false)?\s*$/i.test(asked));
}

/** Client-side file clauses and other parsers than ClickHouse's are refused before the engine sees anything. */
function checkRequest(statement: Statement, parsed: ParsedRequest): void {
  if (statement.touchesFiles) {
    throw new ClickHouseHttpError(CH.ACCESS_DENIED, 'INTO OUTFILE and FROM INFILE are client-side features: this endpoint does not read or write files for a query');
  }
  // The statement is inspected with ClickHouse's parser (see inspect); another dialect would parse it differently.
  const dialect = parsed.params.settings.get('dialect');
  if (dialect !== undefined && !/^\s*'?clickhouse'?\s*$/i.test(dialect)) {
    throw new ClickHouseHttpError(CH.ACCESS_DENIED, `dialect ${dialect} is not available on this endpoint: send ClickHouse SQL`);
  }
}

function checkReadonly(statement: Statement, caller: Caller, parsed: ParsedRequest): void {
  if (READ_KEYWORDS.has(statement.keyword) || !readsOnly(caller, parsed)) return;
  const hint = caller.readonly || parsed.method === 'POST' ? '' : `. ${GET_HINT}`;
  throw new ClickHouseHttpError(CH.READONLY, `${caller.name}: Cannot execute query in readonly mode${hint}`);
}

/**
 * Runs the session's setup and then the engine's own parser over the statement (`EXPLAIN AST`,
 * which parses and runs nothing): a syntax error is the engine's (62, whatever the method), and a
 * call that reaches outside the database is refused (see external-access.ts). The setup stays set
 * on the connection for the statement itself.
 */
async function inspect(session: EngineSession, incoming: IncomingStatement, setup: string | undefined, external: ReadonlySet<string>, user: string): Promise<void> {
  const { statement, text } = incoming;
  const sql = text.slice(0, statement.end);
  checkCalls(sql, SETTING_VALUE_CALLS, user);
  const bound = statement.placeholders.length > 0 ? bindQueryParams(sql, statement.placeholders, incoming.queryParams) : undefined;
  const explain = `EXPLAIN AST ${bound?.sql ?? sql}`;
  const result = await session.query(setup ? `${setup}; ${explain}` : explain, { format: 'TSVRaw', ...(bound ? { params: bound.params } : {}) });
  checkAst(result.text(), external, user);
}

/** On GET, the engine's READONLY refusal carries ClickHouse's hint to use POST, as a server's does. */
function withGetHint(err: unknown, method: string): unknown {
  if (method === 'POST') return err;
  const ch = toClickHouseError(err);
  if (ch.code !== CH.READONLY || ch.message.includes(GET_HINT)) return ch;
  return new ClickHouseHttpError(ch.code, `${ch.message}. ${GET_HINT}`, { type: ch.type, cause: err });
}

const quoteIdentifier = (name: string): string => `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;

/**
 * Puts a fresh connection in the state the request describes, in an order that keeps read-only
 * unbreakable: our own defaults first (trusted), then `SET readonly = N` in an engine call of its
 * own, and only then anything the request carries (URL settings, an INSERT's SETTINGS when its
 * data bypasses the SQL, the database). Once the engine is read-only it refuses, with its own
 * READONLY (164), every later attempt to lower `readonly` (and, at level 1, to change any
 * setting); a `readonly = 0` placed in the same SET list as the lock would have won (see TRAPS).
 * Returns the statements still to run; `inspect` sends them ahead of its EXPLAIN, and they stay set.
 */
export async function prepareSession(session: EngineSession, parsed: ParsedRequest, caller: Caller, insertSettings: string | undefined): Promise<string | undefined> {
  const defaults = setStatement(SERVER_DEFAULTS);
  const fromRequest = [setStatement(parsed.params.settings)];
  if (insertSettings) fromRequest.push(`SET ${insertSettings}`);
  if (parsed.database) fromRequest.push(`USE ${quoteIdentifier(parsed.database)}`);
  const level = readonlyLevel(caller, parsed.method);
  // A POST by a full user has nothing to lock: its defaults ride along with the rest, saving a call.
  if (level !== undefined) await session.query(`${defaults}; SET readonly = ${level}`, { format: 'TabSeparated' });
  const sql = [level === undefined ? defaults : undefined, ...fromRequest].filter((s): s is string => s !== undefined).join('; ');
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
  user: string;
};

/** One buffered engine call for `sql` with its placeholders bound. */
function runSql(run: Run, sql: string): Promise<ChdbResult> {
  const { placeholders } = run.incoming.statement;
  const bound = placeholders.length > 0 ? bindQueryParams(sql, placeholders, run.incoming.queryParams) : undefined;
  const text = bound?.sql ?? sql;
  return run.session.query(text, { format: run.meta.format, ...(bound ? { params: bound.params } : {}) });
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
  if (statement.insert?.values) checkCalls(rows.toString('utf8'), run.ctx.engine.external, run.user);
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
  checkRequest(statement, parsed);
  const how = plan(incoming, parsed);
  const session = ctx.engine.session();
  try {
    const started = process.hrtime.bigint();
    const rawInsert = how === 'chunked' || how === 'raw';
    const setup = await prepareSession(session, parsed, caller, rawInsert ? statement.insert?.settings : undefined);
    await inspect(session, incoming, setup, ctx.engine.external, caller.name);
    checkReadonly(statement, caller, parsed);
    const meta: ResponseMeta = {
      queryId: parsed.queryId,
      format: statement.format ?? parsed.defaultFormat,
      timezone: ctx.engine.timezone,
      level: parsed.compressionLevel,
      ...(parsed.coding ? { coding: parsed.coding } : {}),
    };
    const run: Run = { res, parsed, incoming, session, meta, started, ctx, user: caller.name };
    if (how === 'stream') await runStreamed(run);
    else if (how === 'buffer') await runBuffered(run);
    else if (how === 'inline') await runInlineInsert(run, data!);
    else await runRawInsert(run, how, statement.insert!, data!);
  } catch (err) {
    throw withGetHint(err, parsed.method);
  } finally {
    session.close();
  }
}
