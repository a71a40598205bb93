import type { IncomingMessage } from 'node:http';
import type { Rejection } from '../../core/envelope.ts';
import { nestingOver } from '../../core/field-limits.ts';

export type BodyRead = { ok: true; bytes: Buffer } | { ok: false; reason: string };

const tooLarge = (limit: number, what: string): BodyRead => ({ ok: false, reason: `request body ${what} the limit of ${limit} bytes` });

/**
 * Reads the request body, giving up at the first byte over `limit` so an oversized
 * body never sits in memory; the caller answers 413 and closes the connection.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<BodyRead> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.resolve(tooLarge(limit, `declares ${declared} bytes, over`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (settle: () => void): void => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      settle();
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.byteLength;
      if (size > limit) {
        req.pause();
        finish(() => resolve(tooLarge(limit, 'is over')));
      } else {
        chunks.push(chunk);
      }
    };
    const onEnd = (): void => finish(() => resolve({ ok: true, bytes: Buffer.concat(chunks, size) }));
    const onError = (err: Error): void => finish(() => reject(err));
    const onClose = (): void => finish(() => reject(new Error('the client closed the connection before the body was complete')));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

/** One event candidate of a request; `raw` is what the DLQ keeps if it is rejected. */
export type BodyItem = {
  index: number;
  /** the bytes as received (a whole body or an NDJSON line), or the re-serialised element of an array */
  raw: Buffer;
  parsed: { ok: true; value: unknown } | { ok: false; rejection: Rejection };
};

export type SplitBody = { ok: true; items: BodyItem[] } | { ok: false; rejection: Rejection };

const NDJSON_TYPES = /^application\/(x-)?(ndjson|jsonl|jsonlines)\s*(;|$)/i;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function parseJson(text: string): { ok: true; value: unknown } | { ok: false; message: string } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
}

/** Deeper than any event can be (data allows 32 levels): beyond, JSON.stringify would overflow the stack. */
const MAX_BODY_NESTING = 64;

const tooDeep = (what: string): Rejection => ({ code: 'TOO_DEEP', reason: `${what} is nested deeper than ${MAX_BODY_NESTING} levels` });

type Line = { text: string; line: number };

function ndjsonItems(lines: Line[]): BodyItem[] {
  return lines.map(({ text, line }, index) => {
    const parsed = parseJson(text);
    const rejection: Rejection | undefined = !parsed.ok
      ? { code: 'INVALID_JSON', reason: `line ${line} is not valid JSON: ${parsed.message}` }
      : nestingOver(parsed.value, MAX_BODY_NESTING)
        ? tooDeep(`line ${line}`)
        : undefined;
    return { index, raw: Buffer.from(text), parsed: rejection ? { ok: false, rejection } : (parsed as { ok: true; value: unknown }) };
  });
}

/** Non-blank lines, counted without building them, so a body of millions of tiny lines is refused cheaply. */
function countLines(text: string): number {
  let count = 0;
  let blank = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      if (!blank) count++;
      blank = true;
    } else if (c > 32) blank = false;
  }
  return blank ? count : count + 1;
}

function toLines(text: string): Line[] {
  return text
    .split('\n')
    .map((line, i) => ({ text: line.replace(/\r$/, ''), line: i + 1 }))
    .filter((l) => l.text.trim() !== '');
}

const tooMany = (count: number, maxItems: number): SplitBody => ({
  ok: false,
  rejection: { code: 'TOO_MANY_ITEMS', reason: `request carries ${count} items, over the limit of ${maxItems} (http.maxItems): split it` },
});

/**
 * Splits a body into event candidates: one JSON object, a JSON array of them, or
 * NDJSON (by Content-Type, or a body that is not JSON as a whole but has several lines).
 * Blank NDJSON lines are skipped, so `index` counts events, not lines. More than
 * `maxItems` candidates refuse the whole body before any is parsed or looked at.
 */
export function splitBody(bytes: Buffer, contentType: string | undefined, maxItems: number): SplitBody {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { ok: false, rejection: { code: 'INVALID_JSON', reason: 'request body is not valid UTF-8' } };
  }
  const lineCount = countLines(text);
  if (lineCount === 0) return { ok: false, rejection: { code: 'INVALID_JSON', reason: 'request body is empty: send a JSON object, a JSON array or NDJSON' } };
  if (NDJSON_TYPES.test(contentType ?? '')) return lineCount > maxItems ? tooMany(lineCount, maxItems) : { ok: true, items: ndjsonItems(toLines(text)) };

  const whole = parseJson(text);
  if (whole.ok) {
    if (Array.isArray(whole.value) && whole.value.length > maxItems) return tooMany(whole.value.length, maxItems);
    if (nestingOver(whole.value, MAX_BODY_NESTING)) return { ok: false, rejection: tooDeep('request body') };
    if (!Array.isArray(whole.value)) return { ok: true, items: [{ index: 0, raw: bytes, parsed: whole }] };
    return {
      ok: true,
      items: whole.value.map((value: unknown, index) => ({ index, raw: Buffer.from(JSON.stringify(value)), parsed: { ok: true, value } })),
    };
  }
  if (!text.trimStart().startsWith('[') && lineCount > 1) return lineCount > maxItems ? tooMany(lineCount, maxItems) : { ok: true, items: ndjsonItems(toLines(text)) };
  return { ok: false, rejection: { code: 'INVALID_JSON', reason: `request body is not valid JSON: ${whole.message}` } };
}
