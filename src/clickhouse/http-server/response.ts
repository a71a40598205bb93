import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { constants, createBrotliCompress, createDeflate, createGzip } from 'node:zlib';
import { contentTypeFor } from './formats.ts';
import { exceptionText, type ClickHouseHttpError } from './errors.ts';

/** clickhouse-server's X-ClickHouse-Summary: every count a decimal string. */
export type Summary = {
  read_rows: number;
  read_bytes: number;
  written_rows: number;
  written_bytes: number;
  result_rows: number;
  result_bytes: number;
  elapsed_ns: number;
};

export const emptySummary = (): Summary => ({ read_rows: 0, read_bytes: 0, written_rows: 0, written_bytes: 0, result_rows: 0, result_bytes: 0, elapsed_ns: 0 });

const summaryHeader = (s: Summary): string =>
  JSON.stringify({
    read_rows: String(s.read_rows),
    read_bytes: String(s.read_bytes),
    written_rows: String(s.written_rows),
    written_bytes: String(s.written_bytes),
    total_rows_to_read: '0',
    result_rows: String(s.result_rows),
    result_bytes: String(s.result_bytes),
    elapsed_ns: String(s.elapsed_ns),
  });

export type ResponseCoding = 'gzip' | 'deflate' | 'br';

/**
 * ClickHouse compresses a response only when the query enables `enable_http_compression` and the
 * client accepts an encoding; zstd is left out because Node 20's zlib has no zstd.
 */
export function chooseCoding(headers: IncomingHttpHeaders, enabled: boolean): ResponseCoding | undefined {
  if (!enabled) return undefined;
  const accepted = String(headers['accept-encoding'] ?? '')
    .split(',')
    .map((part) => part.split(';')[0]!.trim().toLowerCase());
  return (['gzip', 'deflate', 'br'] as const).find((coding) => accepted.includes(coding));
}

export type ResponseMeta = {
  queryId: string;
  format: string;
  timezone: string;
  coding?: ResponseCoding;
  /** zlib level from http_zlib_compression_level (ClickHouse's default: 3). */
  level: number;
};

function compressor(coding: ResponseCoding, level: number) {
  if (coding === 'gzip') return createGzip({ level });
  if (coding === 'deflate') return createDeflate({ level });
  return createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: Math.min(level, 11) } });
}

/** The body sink of a successful response; `tag` is set when an error may still arrive mid-stream. */
export type Body = { out: Writable; tag?: string; end: () => Promise<void> };

/** Sends the success headers and returns where to write the body. */
export function startResponse(res: ServerResponse, meta: ResponseMeta, summary: Summary, options: { streaming: boolean }): Body {
  const tag = options.streaming ? randomBytes(8).toString('hex') : undefined;
  res.statusCode = 200;
  res.setHeader('Content-Type', contentTypeFor(meta.format));
  res.setHeader('X-ClickHouse-Query-Id', meta.queryId);
  res.setHeader('X-ClickHouse-Format', meta.format);
  res.setHeader('X-ClickHouse-Timezone', meta.timezone);
  res.setHeader('X-ClickHouse-Summary', summaryHeader(summary));
  // Lets a client detect an exception written into the body after this 200 (ClickHouse ≥ 25.11).
  if (tag) res.setHeader('X-ClickHouse-Exception-Tag', tag);
  if (meta.coding) res.setHeader('Content-Encoding', meta.coding);
  const out: Writable = meta.coding ? compressor(meta.coding, meta.level) : res;
  if (out !== res) out.pipe(res);
  const end = async () => {
    if (res.destroyed) return;
    out.end();
    // Settles on 'finish', or on the client going away first.
    await finished(res).catch(() => undefined);
  };
  return { out, end, ...(tag ? { tag } : {}) };
}

/** Writes with back-pressure; rejects when the client has gone away. */
export function write(res: ServerResponse, out: Writable, chunk: Uint8Array): Promise<void> {
  if (res.destroyed) return Promise.reject(new Error('client disconnected'));
  if (out.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const settle = (err?: Error) => {
      out.off('drain', onDrain);
      res.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => settle();
    const onClose = () => settle(new Error('client disconnected'));
    out.on('drain', onDrain);
    res.on('close', onClose);
  });
}

/**
 * An error after the 200 went out: the exception block ClickHouse ≥ 25.11 appends, which
 * `@clickhouse/client` recognises by the tag from the response headers.
 */
export function streamedExceptionBlock(err: ClickHouseHttpError, version: string, tag: string): Buffer {
  const message = exceptionText(err, version).trimEnd();
  const length = Buffer.byteLength(message) + 1;
  return Buffer.from(`\r\n__exception__\r\n${tag}\r\n${message}\n${length} ${tag}\r\n__exception__\r\n`);
}

/** A failed request, answered before any body: the status, code header and text clickhouse-server sends. */
export function sendError(res: ServerResponse, err: ClickHouseHttpError, version: string, queryId: string | undefined): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = exceptionText(err, version);
  res.statusCode = err.httpStatus;
  res.setHeader('Content-Type', 'text/plain; charset=UTF-8');
  res.setHeader('X-ClickHouse-Exception-Code', String(err.code));
  if (queryId) res.setHeader('X-ClickHouse-Query-Id', queryId);
  for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** A plain-text answer (`Ok.` for /ping, the 404 hint). */
export function sendText(res: ServerResponse, status: number, text: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=UTF-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}
