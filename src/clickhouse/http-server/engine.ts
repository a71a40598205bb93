import { resolve } from 'node:path';
import { drainPending, Session, type ChdbResult, type RawInsertFormat, type RawInsertSummary } from 'chdb';
import { limiter, type Limiter } from '../../core/limiter.ts';
import { ClickHouseServerError, ServerErrorCodes } from './errors.ts';
import { externalNames } from './external-access.ts';

/**
 * The embedded engine as the HTTP endpoint uses it. Every request gets its own chDB connection
 * (a Session on the shared data directory, ~0.1 ms to open): settings, `USE` and query
 * parameters stay per connection in chDB, so a fresh one per request gives each query exactly
 * the settings it was sent with, as a server's query context does. Same-path connections share
 * one engine and run in parallel.
 *
 * chDB runs queries, inserts and stream fetches on libuv's thread pool, not on the event loop
 * (measured on 2 cores: a 150 ms aggregate over 300M rows delays timers by under 4 ms; /ping
 * answers in ~1 ms at the median, under 150 ms at worst, while 4 such queries run back to back).
 * No lock is needed around the engine: same-path connections run in parallel, and chDB itself
 * serialises parameter binding process-wide. The pool (UV_THREADPOOL_SIZE, default 4) also
 * serves zlib and fs, so engine work is capped one below its size: gzip and file I/O keep a thread.
 */

export type ChdbEngineOptions = {
  /** The chDB data directory (one per process; other connections in this process must use the same). */
  path: string;
  /** Engine operations running at once; default: libuv pool size − 1. */
  maxConcurrency?: number;
};

const defaultConcurrency = (): number => {
  const pool = Number(process.env.UV_THREADPOOL_SIZE);
  return Math.max(1, (Number.isInteger(pool) && pool > 0 ? pool : 4) - 1);
};

export class ChdbEngine {
  readonly #anchor: Session;
  readonly #gate: Limiter;
  readonly #sessions = new Set<EngineSession>();
  #closed = false;

  private constructor(
    readonly path: string,
    anchor: Session,
    concurrency: number,
    /** The engine's version string, as clickhouse-server reports it in errors. */
    readonly version: string,
    readonly timezone: string,
    /** Function, engine and source names that reach outside the database (see external-access.ts). */
    readonly external: ReadonlySet<string>,
  ) {
    this.#anchor = anchor;
    this.#gate = limiter(concurrency);
  }

  /**
   * Opens the engine on `path`. An anchor connection stays open for the engine's lifetime so the
   * data directory remains bound between requests.
   */
  static async open(options: ChdbEngineOptions): Promise<ChdbEngine> {
    const path = resolve(options.path);
    const anchor = new Session(path);
    try {
      const info = (await anchor.queryAsync('SELECT version(), timezone()', { format: 'TSV' })).text().trim().split('\t');
      const tableFunctions = (await anchor.queryAsync('SELECT name FROM system.table_functions', { format: 'TSVRaw' })).text().split('\n').filter(Boolean);
      const external = externalNames(tableFunctions);
      return new ChdbEngine(path, anchor, options.maxConcurrency ?? defaultConcurrency(), info[0] ?? 'unknown', info[1] ?? 'UTC', external);
    } catch (err) {
      anchor.close();
      throw err;
    }
  }

  /** A fresh connection for one request; close it when the request is done. */
  session(): EngineSession {
    if (this.#closed) throw new ClickHouseServerError(ServerErrorCodes.ENGINE_CLOSED, 'the ClickHouse engine is closed');
    const session = new EngineSession(new Session(this.path), this.#gate, (s) => this.#sessions.delete(s));
    this.#sessions.add(session);
    return session;
  }

  /** Closes every connection and waits until no engine operation is running. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const session of [...this.#sessions]) session.close();
    this.#anchor.close();
    await drainPending();
  }
}

export type QueryOptions = { format: string; params?: Record<string, string | null> };

export class EngineSession {
  #closed = false;
  constructor(
    private readonly session: Session,
    private readonly gate: Limiter,
    private readonly onClose: (session: EngineSession) => void,
  ) {}

  /** Runs one statement and returns its whole result. Parameterised statements go through chDB's binder. */
  query(sql: string, options: QueryOptions): Promise<ChdbResult> {
    return this.gate.run(() =>
      options.params ? this.session.queryBindAsync(sql, options.params, { format: options.format }) : this.session.queryAsync(sql, { format: options.format }),
    );
  }

  /**
   * Streams a SELECT's output chunk by chunk (a few MB each). Only unparameterised queries:
   * chDB serialises parameter binding process-wide for its buffered calls, and its streaming
   * binder is outside that lock.
   */
  async *stream(sql: string, format: string): AsyncGenerator<Uint8Array> {
    const iterator = this.session.queryStream(sql, { format })[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await this.gate.run(() => iterator.next());
        if (next.done) return;
        yield next.value.raw();
      }
    } finally {
      await iterator.return?.(undefined);
    }
  }

  /** Zero-copy insert of one buffer in `format`; settings already SET on this connection apply. */
  insert(table: string, columns: string[] | undefined, format: RawInsertFormat, values: Buffer): Promise<RawInsertSummary> {
    return this.gate.run(() => this.session.insert({ table, format, values, ...(columns ? { columns } : {}) }));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.session.close();
    this.onClose(this);
  }
}
