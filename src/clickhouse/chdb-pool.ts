import { randomUUID } from 'node:crypto';
import { createChdbConnection } from 'chdb/connection';
import { inlineParams } from './inline-params.ts';

type ChdbConnection = ReturnType<typeof createChdbConnection>;
type Method = 'query' | 'exec' | 'command' | 'insert' | 'ping';
type Params = { query?: string; query_id?: string; query_params?: Record<string, unknown>; clickhouse_settings?: Record<string, unknown> };

/** The default max_query_size; an inlined statement longer than it raises it for itself. */
const DEFAULT_MAX_QUERY_SIZE = 262_144;

const SCAN_PREFIX = 'scan-';

/**
 * A query id that sends the call to the scan lane: a read or INSERT … SELECT whose cost
 * follows the size of a day or of the store (a replay, the first state of a big day, a
 * whole-day read). Scans wait for each other, never in front of the short calls.
 */
export const scanQueryId = (): string => `${SCAN_PREFIX}${randomUUID()}`;

/** Connections that each run one call at a time, handed out in arrival order. */
function lane(connections: ChdbConnection[]) {
  const idle = [...connections];
  const waiting: Array<(c: ChdbConnection) => void> = [];
  return async <T>(task: (c: ChdbConnection) => Promise<T>): Promise<T> => {
    const connection = idle.pop() ?? (await new Promise<ChdbConnection>((take) => waiting.push(take)));
    try {
      return await task(connection);
    } finally {
      const next = waiting.shift();
      if (next) next(connection);
      else idle.push(connection);
    }
  };
}

/** Parameters written into the statement (see inline-params.ts), so the call skips chDB's process-wide binding chain. */
function inlined(params: Params): Params {
  const values = params.query_params;
  if (params.query === undefined || !values || Object.keys(values).length === 0) return params;
  const query = inlineParams(params.query, values);
  const settings = query.length > DEFAULT_MAX_QUERY_SIZE ? { ...params.clickhouse_settings, max_query_size: query.length + 1_024 } : params.clickhouse_settings;
  return { ...params, query, query_params: undefined, clickhouse_settings: settings };
}

/**
 * Connections to one chDB data directory as one Connection, in two lanes: `short` for
 * writes, revisions and readers, `scan` for calls whose query id comes from
 * scanQueryId. chDB allows several connections per process (they share the engine and
 * its data), each running one call at a time on a libuv thread; queueing here rather
 * than inside chDB keeps a waiting call from holding a thread. Every call sends every
 * setting it relies on (see TRAPS: chDB keeps SET values per connection), so it does
 * not matter which connection a call gets. Closing the pool closes `alongside` too.
 */
export function chdbLanes(path: string, sizes: { short: number; scan: number }, alongside: ChdbConnection[]) {
  const open = (n: number) => Array.from({ length: n }, () => createChdbConnection({ path }));
  const short = open(sizes.short);
  const scan = open(sizes.scan);
  const lanes = { short: lane(short), scan: lane(scan) };
  const on = (method: Method) => (params: Params) => {
    const run = params.query_id?.startsWith(SCAN_PREFIX) ? lanes.scan : lanes.short;
    return run((connection) => (connection[method] as (p: unknown) => Promise<unknown>).call(connection, inlined(params)));
  };
  return {
    query: on('query'),
    exec: on('exec'),
    command: on('command'),
    insert: on('insert'),
    ping: on('ping'),
    close: async () => {
      await Promise.all([...short, ...scan, ...alongside].map((c) => c.close()));
    },
  };
}
