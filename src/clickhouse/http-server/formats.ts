import { anyLineFeed, betweenJsonRows, type RowBoundary } from './body.ts';

/** What the endpoint needs to know about ClickHouse data formats. */

export const DEFAULT_FORMAT = 'TabSeparated';

/** Aliases chDB's raw insert does not accept under their alias name. */
const ALIASES: Record<string, string> = {
  JSONLines: 'JSONEachRow',
  NDJSON: 'JSONEachRow',
};

/**
 * Formats a body can be cut into independent pieces at row boundaries, and how to find them:
 * these are streamed to the engine in bounded chunks.
 */
const CHUNKABLE = new Map<string, RowBoundary>([
  ['JSONEachRow', betweenJsonRows],
  ['JSONCompactEachRow', betweenJsonRows],
  ['TSV', anyLineFeed],
  ['TabSeparated', anyLineFeed],
]);

/** Formats chDB's zero-copy raw insert accepts (a whole body in one buffer). */
const RAW_INSERTABLE = new Set([...CHUNKABLE.keys(), 'CSV', 'CSVWithNames', 'TSVWithNames', 'TabSeparatedWithNames']);

/**
 * Binary formats: the engine's SQL entry point takes text, so a body in one of these cannot be
 * handed over inline without corrupting it.
 */
const BINARY = /^(RowBinary\w*|Native|Parquet|Arrow|ArrowStream|ORC|Avro|AvroConfluent|Protobuf\w*|CapnProto|MsgPack|BSONEachRow|Npy|RawBLOB)$/;

export type InsertPath = 'chunked' | 'raw' | 'inline';

/** How a body in `format` reaches the engine: cut at row boundaries into pieces, one raw buffer, or inline SQL text. */
export function insertPath(format: string): InsertPath {
  const name = ALIASES[format] ?? format;
  if (CHUNKABLE.has(name)) return 'chunked';
  if (RAW_INSERTABLE.has(name)) return 'raw';
  return 'inline';
}

export const canonicalFormat = (format: string): string => ALIASES[format] ?? format;

/** Where rows of a chunked format end. */
export const rowBoundaryOf = (format: string): RowBoundary => CHUNKABLE.get(canonicalFormat(format)) ?? anyLineFeed;

export const isBinaryFormat = (format: string): boolean => BINARY.test(format);

/** The Content-Type clickhouse-server sends for a result in `format`. */
export function contentTypeFor(format: string): string {
  const name = canonicalFormat(format);
  if (/^(TabSeparated|TSV)/.test(name)) return 'text/tab-separated-values; charset=UTF-8';
  if (/^CSV/.test(name)) return `text/csv; charset=UTF-8; header=${/WithNames/.test(name) ? 'present' : 'absent'}`;
  if (/^JSON.*EachRow/.test(name)) return 'application/x-ndjson; charset=UTF-8';
  if (/^JSON/.test(name)) return 'application/json; charset=UTF-8';
  if (isBinaryFormat(name)) return 'application/octet-stream';
  return 'text/plain; charset=UTF-8';
}
