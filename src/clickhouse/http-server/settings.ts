import { CH, ClickHouseHttpError } from './errors.ts';

/**
 * URL parameters the HTTP handler consumes itself (ClickHouse's reserved names); every other
 * name except `param_*` is a setting for the query.
 */
const RESERVED = new Set([
  'query', 'compress', 'decompress', 'user', 'password', 'quota_key', 'query_id', 'stacktrace', 'role', 'buffer_size',
  'wait_end_of_query', 'session_id', 'session_timeout', 'session_check', 'client_protocol_version', 'close_session',
  'database', 'default_format',
]);

/** Settings that only shape the HTTP response; they are applied here, not by the engine. */
const HTTP_LAYER = new Set([
  'enable_http_compression', 'http_zlib_compression_level', 'send_progress_in_http_headers', 'http_headers_progress_interval_ms',
  'http_response_buffer_size', 'http_wait_end_of_query', 'http_native_compression_disable_checksumming_on_decompress',
]);

/**
 * Where a server and chDB disagree by default. A client of this endpoint expects a server: an
 * INSERT is synchronous unless it asks for async_insert.
 */
export const SERVER_DEFAULTS: ReadonlyMap<string, string> = new Map([['async_insert', '0']]);

const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export type SplitParams = {
  reserved: Map<string, string>;
  /** Settings for the engine, in URL order. */
  settings: Map<string, string>;
  /** Settings of the HTTP layer (compression, response buffering). */
  http: Map<string, string>;
  /** `param_x=v` → x → v, still in ClickHouse's escaped text form. */
  queryParams: Map<string, string>;
};

export function splitParams(entries: Iterable<[string, string]>): SplitParams {
  const out: SplitParams = { reserved: new Map(), settings: new Map(), http: new Map(), queryParams: new Map() };
  for (const [key, value] of entries) {
    // `?&a=b` yields an empty name; ClickHouse skips it.
    if (key === '') continue;
    if (key.startsWith('param_')) out.queryParams.set(key.slice('param_'.length), value);
    else if (RESERVED.has(key)) out.reserved.set(key, value);
    else if (HTTP_LAYER.has(key)) out.http.set(key, value);
    else out.settings.set(key, value);
  }
  return out;
}

/** A setting value as a SQL literal: numbers bare, anything else a quoted string (which the engine converts). */
function literal(value: string): string {
  if (/^-?\d+(\.\d+)?$/.test(value)) return value;
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** `SET a = 1, b = 'x'`, or undefined when there is nothing to set. Names are checked, values quoted. */
export function setStatement(settings: Iterable<[string, string]>): string | undefined {
  const parts: string[] = [];
  for (const [name, value] of settings) {
    if (!SETTING_NAME.test(name)) throw new ClickHouseHttpError(CH.UNKNOWN_SETTING, `Setting ${JSON.stringify(name)} is neither a builtin setting nor a valid name`);
    parts.push(`${name} = ${literal(value)}`);
  }
  return parts.length > 0 ? `SET ${parts.join(', ')}` : undefined;
}

/** True for the spellings ClickHouse accepts as an enabled boolean setting. */
export const isTruthy = (value: string | undefined): boolean => value !== undefined && /^(1|true|yes|on)$/i.test(value.trim());
