import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { BodyReader, decodedBody, parseMultipart } from './body.ts';
import { CH, ClickHouseHttpError } from './errors.ts';
import { DEFAULT_FORMAT } from './formats.ts';
import { chooseCoding, type ResponseCoding } from './response.ts';
import { isTruthy, splitParams, type SplitParams } from './settings.ts';
import { analyzeStatement, type Statement } from './sql.ts';

/** What a query request asks for, from its URL and headers. */
export type ParsedRequest = {
  method: string;
  params: SplitParams;
  queryId: string;
  database?: string;
  defaultFormat: string;
  /** Buffer the whole result before answering, so an error still gets its status code. */
  waitEndOfQuery: boolean;
  coding?: ResponseCoding;
  compressionLevel: number;
};

const header = (req: IncomingMessage, name: string): string | undefined => {
  const value = req.headers[name];
  return (Array.isArray(value) ? value[0] : value) || undefined;
};

export function parseRequest(req: IncomingMessage, url: URL): ParsedRequest {
  const params = splitParams(url.searchParams);
  const { reserved, http } = params;
  if (reserved.has('session_id')) {
    throw new ClickHouseHttpError(CH.NOT_IMPLEMENTED, 'HTTP sessions (session_id) are not supported by the embedded ClickHouse endpoint: every request runs on its own connection');
  }
  if (isTruthy(reserved.get('compress')) || isTruthy(reserved.get('decompress'))) {
    throw new ClickHouseHttpError(CH.NOT_IMPLEMENTED, "ClickHouse's native block compression (compress/decompress) is not supported; use HTTP compression (enable_http_compression=1 and Accept-Encoding, or Content-Encoding on the request)");
  }
  const database = reserved.get('database') || header(req, 'x-clickhouse-database');
  const level = Number(http.get('http_zlib_compression_level') ?? 3);
  const coding = chooseCoding(req.headers, isTruthy(http.get('enable_http_compression')));
  return {
    method: req.method ?? 'GET',
    params,
    queryId: reserved.get('query_id') || randomUUID(),
    ...(database ? { database } : {}),
    defaultFormat: reserved.get('default_format') || header(req, 'x-clickhouse-format') || DEFAULT_FORMAT,
    waitEndOfQuery: isTruthy(reserved.get('wait_end_of_query')) || isTruthy(http.get('http_wait_end_of_query')),
    ...(coding ? { coding } : {}),
    compressionLevel: Number.isInteger(level) && level >= 0 && level <= 9 ? level : 3,
  };
}

/** One statement as received: its SQL and, for an INSERT with data, the data as it streams in. */
export type IncomingStatement = {
  statement: Statement;
  /** The text the statement was analysed in; the SQL is `text.slice(0, statement.end)`. */
  text: string;
  queryParams: Map<string, string>;
  /** Bytes after `statement.dataStart`: what is left of the head, then the rest of the body. */
  data?: AsyncIterable<Buffer>;
};

/** How much of a body is read before deciding where an INSERT's SQL ends. */
const HEAD_BYTES = 64 * 1024;

async function* concatData(head: Buffer, rest: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  if (head.length > 0) yield head;
  yield* rest;
}

/**
 * Reads the statement the way ClickHouse's HTTP handler does: the `query` URL parameter, then a
 * line feed, then the POST body, parsed as one text. For an INSERT only the head is read here;
 * its data is left streaming.
 */
export async function readStatement(req: IncomingMessage, parsed: ParsedRequest, maxBufferedBytes: number): Promise<IncomingStatement> {
  const urlQuery = parsed.params.reserved.get('query');
  const queryParams = new Map(parsed.params.queryParams);
  if (parsed.method === 'GET' || parsed.method === 'HEAD') {
    const text = urlQuery ?? '';
    return { statement: analyzeStatement(text, { complete: true }), text, queryParams };
  }
  const body = new BodyReader(decodedBody(req));
  const contentType = header(req, 'content-type') ?? '';
  if (/^multipart\/form-data/i.test(contentType)) {
    const fields = parseMultipart(await body.readAll(maxBufferedBytes), contentType);
    for (const [name, value] of fields) if (name.startsWith('param_')) queryParams.set(name.slice('param_'.length), value);
    const text = fields.get('query') ?? urlQuery ?? '';
    return { statement: analyzeStatement(text, { complete: true }), text, queryParams };
  }
  await body.fill(HEAD_BYTES);
  const joined = (): Buffer => {
    const bodyBytes = body.buffered;
    if (urlQuery === undefined) return bodyBytes;
    return Buffer.concat([Buffer.from(bodyBytes.length > 0 ? `${urlQuery}\n` : urlQuery, 'utf8'), bodyBytes]);
  };
  let head = joined();
  let text = head.toString('utf8');
  let statement = analyzeStatement(text, { complete: body.ended });
  if (!statement) {
    await body.readAll(maxBufferedBytes);
    head = joined();
    text = head.toString('utf8');
    statement = analyzeStatement(text, { complete: true });
  }
  if (statement.dataStart === undefined) return { statement, text, queryParams };
  const offset = Buffer.byteLength(text.slice(0, statement.dataStart), 'utf8');
  return { statement, text, queryParams, data: concatData(head.subarray(offset), body.rest()) };
}
