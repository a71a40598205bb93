import type { IncomingMessage } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { CH, ClickHouseHttpError } from './errors.ts';

/** The request body with its Content-Encoding (gzip, deflate, br) undone. */
export function decodedBody(req: IncomingMessage): Readable {
  const encoding = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
  if (encoding === '' || encoding === 'identity') return req;
  const decoder =
    encoding === 'gzip' || encoding === 'x-gzip' ? createGunzip()
    : encoding === 'deflate' ? createInflate()
    : encoding === 'br' ? createBrotliDecompress()
    : undefined;
  if (!decoder) throw new ClickHouseHttpError(CH.NOT_IMPLEMENTED, `Unsupported Content-Encoding: ${encoding} (supported: gzip, deflate, br)`);
  // A corrupt body surfaces as a stream error when read; pipeline forwards it and cleans both ends up.
  return pipeline(req, decoder, () => undefined);
}

const tooLarge = (limit: number) =>
  new ClickHouseHttpError(CH.QUERY_IS_TOO_LARGE, `Request body exceeds the ${limit} bytes this endpoint buffers for one statement; stream it in a line-delimited format (JSONEachRow, TabSeparated) instead`);

/** A failure while reading the body: a corrupt compressed body is ClickHouse's CANNOT_DECOMPRESS. */
function bodyError(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (code.startsWith('Z_') || code.startsWith('ERR_BROTLI'))) {
    return new ClickHouseHttpError(CH.CANNOT_DECOMPRESS, `Cannot decompress the request body: ${(err as Error).message}`, { cause: err });
  }
  return err;
}

/** Reads a body incrementally: a head to find where the SQL ends, then the rest as a stream. */
export class BodyReader {
  readonly #chunks: Buffer[] = [];
  #bytes = 0;
  #ended = false;
  readonly #source: AsyncIterator<Buffer>;

  constructor(stream: Readable) {
    this.#source = stream[Symbol.asyncIterator]();
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Everything read so far. */
  get buffered(): Buffer {
    if (this.#chunks.length > 1) this.#chunks.splice(0, this.#chunks.length, Buffer.concat(this.#chunks));
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  /** Reads until at least `bytes` are buffered or the body ends. */
  async fill(bytes: number): Promise<void> {
    while (!this.#ended && this.#bytes < bytes) {
      const chunk = await this.#pull();
      if (!chunk) return;
      this.#chunks.push(chunk);
      this.#bytes += chunk.length;
    }
  }

  /** The whole body, refused past `limit` bytes. */
  async readAll(limit: number): Promise<Buffer> {
    await this.fill(limit + 1);
    if (this.#bytes > limit) throw tooLarge(limit);
    return this.buffered;
  }

  /** What has not been buffered yet, chunk by chunk as the client sends it. */
  async *rest(): AsyncGenerator<Buffer> {
    for (let chunk = await this.#pull(); chunk; chunk = await this.#pull()) yield chunk;
  }

  async #pull(): Promise<Buffer | undefined> {
    if (this.#ended) return undefined;
    try {
      const next = await this.#source.next();
      if (!next.done) return Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      this.#ended = true;
      return undefined;
    } catch (err) {
      throw bodyError(err);
    }
  }
}

/** Concatenates a source into one buffer, refused past `limit` bytes. */
export async function collect(source: AsyncIterable<Buffer>, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let bytes = 0;
  for await (const part of source) {
    bytes += part.length;
    if (bytes > limit) throw tooLarge(limit);
    parts.push(part);
  }
  return Buffer.concat(parts, bytes);
}

/** Only spaces, tabs and line breaks: nothing to insert. */
export const isBlank = (bytes: Uint8Array): boolean => bytes.every((b) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d);

/** Whether the line feed at `at` ends a row, judged from the bytes around it. */
export type RowBoundary = (buf: Buffer, at: number) => boolean;

/** TabSeparated escapes line feeds inside values: every raw one ends a row. */
export const anyLineFeed: RowBoundary = () => true;

/**
 * JSON rows may span lines (pretty-printed objects are valid JSONEachRow), so a line feed ends a
 * row only between a closing `}`/`]` and an opening `{`/`[`; JSON strings cannot hold a raw one.
 */
export const betweenJsonRows: RowBoundary = (buf, at) => {
  let before = at - 1;
  if (buf[before] === 0x0d) before--;
  const after = buf[at + 1];
  return (buf[before] === 0x7d || buf[before] === 0x5d) && (after === 0x7b || after === 0x5b);
};

/** The last row boundary at or before `limit`, else the first after it; -1 when there is none yet. */
function findCut(buf: Buffer, limit: number, isBoundary: RowBoundary): number {
  for (let at = buf.lastIndexOf(0x0a, limit); at >= 0; at = at > 0 ? buf.lastIndexOf(0x0a, at - 1) : -1) {
    if (isBoundary(buf, at)) return at;
  }
  for (let at = buf.indexOf(0x0a, limit + 1); at >= 0; at = buf.indexOf(0x0a, at + 1)) {
    if (isBoundary(buf, at)) return at;
  }
  return -1;
}

/**
 * Re-cuts a byte stream into pieces of about `size` bytes that end at a row boundary, so every
 * piece is a complete insert on its own. Cuts depend on the data only, not on how the network
 * delivered it, so a retried body is cut the same way (and block-hash dedup still recognises
 * it). One piece is held at a time; the source is not pulled while the caller works on it.
 */
export async function* rowChunks(source: AsyncIterable<Buffer>, size: number, maxRow: number, isBoundary: RowBoundary): AsyncGenerator<Buffer> {
  let pending = Buffer.alloc(0);
  let parts: Buffer[] = [];
  let bytes = 0;
  for await (const part of source) {
    parts.push(part);
    bytes += part.length;
    while (bytes >= size) {
      pending = Buffer.concat([pending, ...parts]);
      parts = [];
      const cut = findCut(pending, size - 1, isBoundary);
      if (cut < 0) {
        if (bytes > maxRow) throw new ClickHouseHttpError(CH.QUERY_IS_TOO_LARGE, `A row of the insert is longer than ${maxRow} bytes`);
        break;
      }
      const piece = pending.subarray(0, cut + 1);
      pending = pending.subarray(cut + 1);
      bytes = pending.length;
      if (!isBlank(piece)) yield piece;
    }
  }
  const last = Buffer.concat([pending, ...parts]);
  if (!isBlank(last)) yield last;
}

/** `multipart/form-data` fields (the client sends `query` and `param_*` this way when they are long). */
export function parseMultipart(body: Buffer, contentType: string): Map<string, string> {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  const marker = boundary?.[1] ?? boundary?.[2]?.trim();
  if (!marker) throw new ClickHouseHttpError(CH.BAD_ARGUMENTS, 'multipart/form-data request without a boundary');
  const fields = new Map<string, string>();
  const delimiter = Buffer.from(`--${marker}`);
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(delimiter, start);
    if (next < 0) break;
    const part = body.subarray(start, next);
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd >= 0) {
      const headers = part.subarray(0, headerEnd).toString('utf8');
      const disposition = /content-disposition:[^\r\n]*?\bname="([^"]*)"/i.exec(headers);
      if (/\bfilename=/i.test(headers)) throw new ClickHouseHttpError(CH.NOT_IMPLEMENTED, 'External data tables in multipart requests are not supported by this endpoint');
      // The part's value ends before the CRLF that precedes the next delimiter.
      let value = part.subarray(headerEnd + 4);
      if (value.subarray(-2).toString() === '\r\n') value = value.subarray(0, -2);
      if (disposition?.[1]) fields.set(disposition[1], value.toString('utf8'));
    }
    at = next;
  }
  return fields;
}
