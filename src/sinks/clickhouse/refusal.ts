import type { ClickHouseClient } from '@clickhouse/client';

/**
 * ClickHouse error codes that mean "this data, not this moment": the engine read the
 * rows and refused their content. Sending the same rows again fails the same way, so
 * the batch is split to find the rows and they go to the DLQ. Every other error
 * (connection lost, timeouts, TOO_MANY_PARTS, memory) is transient and retried.
 */
const ROW_REFUSALS: ReadonlyMap<number, string> = new Map([
  [6, 'CANNOT_PARSE_TEXT'],
  [25, 'CANNOT_PARSE_ESCAPE_SEQUENCE'],
  [26, 'CANNOT_PARSE_QUOTED_STRING'],
  [27, 'CANNOT_PARSE_INPUT_ASSERTION_FAILED'],
  [38, 'CANNOT_PARSE_DATE'],
  [41, 'CANNOT_PARSE_DATETIME'],
  [53, 'TYPE_MISMATCH'],
  [69, 'ARGUMENT_OUT_OF_BOUND'],
  [70, 'CANNOT_CONVERT_TYPE'],
  [72, 'CANNOT_PARSE_NUMBER'],
  [117, 'INCORRECT_DATA'],
  [131, 'TOO_LARGE_STRING_SIZE'],
  [407, 'DECIMAL_OVERFLOW'],
  [469, 'VIOLATED_CONSTRAINT'],
]);
const REFUSAL_TYPES = new Set(ROW_REFUSALS.values());

/** The engine prints its code first (`Code: 469. DB::Exception: …`); chDB's insert error carries only that text. */
const ENGINE_CODE = /^Code: (\d+)\./;

/**
 * Whether a ClickHouse error refuses the rows themselves. Matched on the error's code
 * and type, not its class: chDB throws its own error classes (TRAPS), the HTTP client
 * a ClickHouseError with the numeric code as a string.
 */
export function isRowRefusal(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, type, message } = err as { code?: unknown; type?: unknown; message?: unknown };
  if (typeof type === 'string' && REFUSAL_TYPES.has(type)) return true;
  const numeric = typeof code === 'string' && /^\d+$/.test(code) ? Number(code) : Number(ENGINE_CODE.exec(String(message ?? ''))?.[1]);
  return ROW_REFUSALS.has(numeric);
}

/**
 * Whether an error came from reaching or running ClickHouse at all (an engine error with
 * its code, a socket error, a timeout) rather than from the message itself. Such an error
 * says nothing about the message: a quiet feed waits it out instead of filing the message.
 */
export function isSinkError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, type, message, name } = err as { code?: unknown; type?: unknown; message?: unknown; name?: unknown };
  if (typeof type === 'string' || (typeof code === 'string' && /^(\d+|E[A-Z_]+)$/.test(code))) return true;
  if (ENGINE_CODE.test(String(message ?? ''))) return true;
  return /timeout|abort/i.test(String(name ?? '')) || /timeout|socket hang up|ECONNRESET|ECONNREFUSED/i.test(String(message ?? ''));
}

/**
 * Whether a message's failure is its own: not an error of ClickHouse itself, and
 * ClickHouse answers now. What tells poison from an outage on a quiet feed (nats/poison.ts).
 */
export const clickHouseAnswers = (client: ClickHouseClient) => async (err: unknown): Promise<boolean> => !isSinkError(err) && (await client.ping()).success;
