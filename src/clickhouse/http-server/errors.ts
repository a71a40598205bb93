/**
 * ClickHouse's error model on the wire: a numeric code, an UPPER_CASE type, an
 * HTTP status chosen from the code, and a body `Code: N. DB::Exception: … (TYPE)`
 * that `@clickhouse/client` parses back into its ClickHouseError.
 */

/** The ClickHouse error codes this endpoint raises itself (numbers from the engine's `errorCodeToName`). */
export const CH = {
  CANNOT_PARSE_TEXT: 6,
  THERE_IS_NO_COLUMN: 8,
  DUPLICATE_COLUMN: 15,
  CANNOT_PARSE_ESCAPE_SEQUENCE: 25,
  CANNOT_PARSE_QUOTED_STRING: 26,
  CANNOT_PARSE_INPUT_ASSERTION_FAILED: 27,
  BAD_ARGUMENTS: 36,
  UNKNOWN_ELEMENT_IN_AST: 37,
  CANNOT_PARSE_DATE: 38,
  CANNOT_PARSE_DATETIME: 41,
  ILLEGAL_COLUMN: 44,
  UNKNOWN_FUNCTION: 46,
  UNKNOWN_IDENTIFIER: 47,
  NOT_IMPLEMENTED: 48,
  UNKNOWN_TYPE: 50,
  TYPE_MISMATCH: 53,
  UNKNOWN_STORAGE: 56,
  UNKNOWN_TABLE: 60,
  SYNTAX_ERROR: 62,
  UNKNOWN_AGGREGATE_FUNCTION: 63,
  CANNOT_PARSE_NUMBER: 72,
  UNKNOWN_FORMAT: 73,
  CANNOT_OPEN_FILE: 76,
  UNKNOWN_TYPE_OF_QUERY: 78,
  UNKNOWN_DATABASE: 81,
  UNKNOWN_SETTING: 115,
  INCORRECT_DATA: 117,
  UNKNOWN_TYPE_OF_AST_NODE: 123,
  UNKNOWN_DIRECTION_OF_SORTING: 152,
  TIMEOUT_EXCEEDED: 159,
  READONLY: 164,
  TOO_DEEP_AST: 167,
  TOO_BIG_AST: 168,
  UNKNOWN_USER: 192,
  WRONG_PASSWORD: 193,
  REQUIRED_PASSWORD: 194,
  SOCKET_TIMEOUT: 209,
  QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING: 216,
  UNEXPECTED_AST_STRUCTURE: 223,
  QUERY_IS_TOO_LARGE: 229,
  CANNOT_DECOMPRESS: 271,
  VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE: 321,
  UNKNOWN_DATABASE_ENGINE: 336,
  CANNOT_PARSE_UUID: 376,
  HTTP_LENGTH_REQUIRED: 381,
  CANNOT_COMPILE_REGEXP: 427,
  CANNOT_SCHEDULE_TASK: 439,
  CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING: 441,
  ACCESS_DENIED: 497,
  UNKNOWN_ROLE: 511,
  SET_NON_GRANTED_ROLE: 512,
  AUTHENTICATION_FAILED: 516,
  CANNOT_PARSE_IPV4: 675,
  CANNOT_PARSE_IPV6: 676,
  UNSUPPORTED_MEDIA_TYPE: 779,
  STD_EXCEPTION: 1001,
  UNKNOWN_EXCEPTION: 1002,
} as const;

const NAME_OF_CODE = new Map<number, string>(Object.entries(CH).map(([name, code]) => [code, name]));

/** An exception to report to the client exactly as ClickHouse would. */
export class ClickHouseHttpError extends Error {
  override readonly name = 'ClickHouseHttpError';
  readonly type: string;
  readonly httpStatus: number;
  /** Extra response headers (WWW-Authenticate when credentials are missing). */
  readonly headers: Record<string, string>;
  constructor(
    readonly code: number,
    message: string,
    options?: { type?: string; cause?: unknown; httpStatus?: number; headers?: Record<string, string> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.type = options?.type ?? NAME_OF_CODE.get(code) ?? 'UNKNOWN_EXCEPTION';
    this.httpStatus = options?.httpStatus ?? httpStatusForCode(code);
    this.headers = options?.headers ?? {};
  }
}

const STATUS_401 = new Set<number>([CH.REQUIRED_PASSWORD]);
const STATUS_403 = new Set<number>([CH.UNKNOWN_USER, CH.WRONG_PASSWORD, CH.AUTHENTICATION_FAILED, CH.SET_NON_GRANTED_ROLE, CH.ACCESS_DENIED]);
const STATUS_400 = new Set<number>([
  CH.BAD_ARGUMENTS, CH.CANNOT_COMPILE_REGEXP, CH.CANNOT_PARSE_TEXT, CH.CANNOT_PARSE_ESCAPE_SEQUENCE, CH.CANNOT_PARSE_QUOTED_STRING,
  CH.CANNOT_PARSE_DATE, CH.CANNOT_PARSE_DATETIME, CH.CANNOT_PARSE_NUMBER, CH.CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING, CH.CANNOT_PARSE_IPV4,
  CH.CANNOT_PARSE_IPV6, CH.CANNOT_PARSE_INPUT_ASSERTION_FAILED, CH.CANNOT_PARSE_UUID, CH.DUPLICATE_COLUMN, CH.ILLEGAL_COLUMN,
  CH.UNKNOWN_ELEMENT_IN_AST, CH.UNKNOWN_TYPE_OF_AST_NODE, CH.THERE_IS_NO_COLUMN, CH.TOO_DEEP_AST, CH.TOO_BIG_AST,
  CH.UNEXPECTED_AST_STRUCTURE, CH.SYNTAX_ERROR, CH.INCORRECT_DATA, CH.TYPE_MISMATCH, CH.VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE,
]);
const STATUS_404 = new Set<number>([
  CH.UNKNOWN_TABLE, CH.UNKNOWN_FUNCTION, CH.UNKNOWN_IDENTIFIER, CH.UNKNOWN_TYPE, CH.UNKNOWN_STORAGE, CH.UNKNOWN_DATABASE,
  CH.UNKNOWN_SETTING, CH.UNKNOWN_DIRECTION_OF_SORTING, CH.UNKNOWN_AGGREGATE_FUNCTION, CH.UNKNOWN_FORMAT,
  CH.UNKNOWN_DATABASE_ENGINE, CH.UNKNOWN_TYPE_OF_QUERY, CH.UNKNOWN_ROLE,
]);

/** ClickHouse's own mapping (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp); anything unlisted is a 500. */
function httpStatusForCode(code: number): number {
  if (STATUS_401.has(code)) return 401;
  if (STATUS_403.has(code)) return 403;
  if (STATUS_400.has(code)) return 400;
  if (STATUS_404.has(code)) return 404;
  if (code === CH.QUERY_IS_TOO_LARGE) return 413;
  if (code === CH.NOT_IMPLEMENTED) return 501;
  if (code === CH.SOCKET_TIMEOUT || code === CH.CANNOT_OPEN_FILE || code === CH.CANNOT_SCHEDULE_TASK) return 503;
  if (code === CH.HTTP_LENGTH_REQUIRED) return 411;
  if (code === CH.TIMEOUT_EXCEEDED) return 408;
  if (code === CH.UNSUPPORTED_MEDIA_TYPE) return 415;
  return 500;
}

const CODE_PREFIX = /^\s*Code:\s*(\d+)\.\s*(?:DB::Exception:\s*)?/;
const TYPE_SUFFIX = /\s*\(([A-Z0-9_]*[A-Z]{3}[A-Z0-9_]*)\)\s*$/;
const VERSION_SUFFIX = /\s*\(version [^)]*\)\.?\s*$/;

/**
 * The engine's text often nests its own prefix ("Code: 73. DB::Exception: Code: 73. DB::Exception:
 * Unknown format X. (UNKNOWN_FORMAT) (version …). (UNKNOWN_FORMAT)"); keep the innermost sentence so
 * the body we send has exactly one prefix and one type, as a server's does.
 */
function innermostMessage(text: string): { code?: number; type?: string; message: string } {
  let rest = text.trim();
  let code: number | undefined;
  let type: string | undefined;
  for (let changed = true; changed; ) {
    changed = false;
    const prefix = CODE_PREFIX.exec(rest);
    if (prefix) {
      code ??= Number(prefix[1]);
      rest = rest.slice(prefix[0].length);
      changed = true;
    }
    const suffix = TYPE_SUFFIX.exec(rest);
    if (suffix) {
      type ??= suffix[1];
      rest = rest.slice(0, suffix.index);
      changed = true;
    }
    const version = VERSION_SUFFIX.exec(rest);
    if (version) {
      rest = rest.slice(0, version.index);
      changed = true;
    }
  }
  return { code, type, message: rest.replace(/\.$/, '') };
}

type EngineErrorShape = { message?: unknown; code?: unknown; type?: unknown; clickhouseCode?: unknown };

/**
 * Maps anything the engine (or our code) threw to a ClickHouse exception. chDB's errors are
 * its own classes or a bundled copy of the client's ClickHouseError, so `instanceof` is useless:
 * the real engine code is read from `clickhouseCode`, a numeric `code`, or the message text.
 */
export function toClickHouseError(err: unknown): ClickHouseHttpError {
  if (err instanceof ClickHouseHttpError) return err;
  const shape: EngineErrorShape = typeof err === 'object' && err !== null ? (err as EngineErrorShape) : {};
  const text = typeof shape.message === 'string' ? shape.message : String(err);
  const parsed = innermostMessage(text);
  const numeric = (v: unknown): number | undefined => {
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
    return undefined;
  };
  const code = numeric(shape.clickhouseCode) ?? numeric(shape.code) ?? parsed.code ?? CH.UNKNOWN_EXCEPTION;
  const type = typeof shape.type === 'string' && /^[A-Z0-9_]+$/.test(shape.type) ? shape.type : parsed.type;
  return new ClickHouseHttpError(code, parsed.message || text, { ...(type ? { type } : {}), cause: err });
}

/** The response body of a failed query: one line the way clickhouse-server writes it. */
export function exceptionText(err: ClickHouseHttpError, version: string): string {
  return `Code: ${err.code}. DB::Exception: ${err.message}. (${err.type}) (version ${version})\n`;
}

/** Why the server refused to start; a code a caller can match on. */
export const ServerErrorCodes = {
  INSECURE_BIND: 'CLICKHOUSE_HTTP_INSECURE_BIND',
  INVALID_USERS: 'CLICKHOUSE_HTTP_INVALID_USERS',
  LISTEN_FAILED: 'CLICKHOUSE_HTTP_LISTEN_FAILED',
  ENGINE_CLOSED: 'CLICKHOUSE_ENGINE_CLOSED',
} as const;

export type ServerErrorCode = (typeof ServerErrorCodes)[keyof typeof ServerErrorCodes];

export class ClickHouseServerError extends Error {
  override readonly name = 'ClickHouseServerError';
  constructor(
    readonly code: ServerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
