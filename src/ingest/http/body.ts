import type { IncomingMessage } from 'node:http';
import type { Rejection } from '../../core/envelope.ts';

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

function ndjsonItems(lines: Array<{ text: string; line: number }>): BodyItem[] {
  return lines.map(({ text, line }, index) => {
    const parsed = parseJson(text);
    return {
      index,
      raw: Buffer.from(text),
      parsed: parsed.ok ? parsed : { ok: false, rejection: { code: 'INVALID_JSON', reason: `line ${line} is not valid JSON: ${parsed.message}` } },
    };
  });
}

/**
 * Splits a body into event candidates: one JSON object, a JSON array of them, or
 * NDJSON (by Content-Type, or a body that is not JSON as a whole but has several lines).
 * Blank NDJSON lines are skipped, so `index` counts events, not lines.
 */
export function splitBody(bytes: Buffer, contentType: string | undefined): SplitBody {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { ok: false, rejection: { code: 'INVALID_JSON', reason: 'request body is not valid UTF-8' } };
  }
  const lines = text
    .split('\n')
    .map((line, i) => ({ text: line.replace(/\r$/, ''), line: i + 1 }))
    .filter((l) => l.text.trim() !== '');
  if (lines.length === 0) return { ok: false, rejection: { code: 'INVALID_JSON', reason: 'request body is empty: send a JSON object, a JSON array or NDJSON' } };
  if (NDJSON_TYPES.test(contentType ?? '')) return { ok: true, items: ndjsonItems(lines) };

  const whole = parseJson(text);
  if (whole.ok) {
    if (!Array.isArray(whole.value)) return { ok: true, items: [{ index: 0, raw: bytes, parsed: whole }] };
    return {
      ok: true,
      items: whole.value.map((value: unknown, index) => ({ index, raw: Buffer.from(JSON.stringify(value)), parsed: { ok: true, value } })),
    };
  }
  if (!text.trimStart().startsWith('[') && lines.length > 1) return { ok: true, items: ndjsonItems(lines) };
  return { ok: false, rejection: { code: 'INVALID_JSON', reason: `request body is not valid JSON: ${whole.message}` } };
}
