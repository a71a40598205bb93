import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { clickHouseTarget } from '../client.ts';
import type { Config } from '../../core/config.ts';
import { guardRequest, NO_BROWSERS, type BrowserPolicy } from '../../core/http-guard.ts';
import { createLogger, type Logger } from '../../core/logger.ts';
import { endpointUsers } from '../endpoint-users.ts';
import { assertSafeBind, extractCredentials, UserDirectory, type HttpUser } from './auth.ts';
import { ChdbEngine } from './engine.ts';
import { CH, ClickHouseHttpError, ClickHouseServerError, ServerErrorCodes, toClickHouseError } from './errors.ts';
import { execute, type ExecuteContext } from './execute.ts';
import { parseRequest, readStatement, type ParsedRequest } from './request.ts';
import { sendError, sendText } from './response.ts';

export type ClickHouseHttpServerOptions = {
  /** The engine to serve; the server does not close it. */
  engine: ChdbEngine;
  /** Default 127.0.0.1. Any other address needs a password on every user. */
  host?: string;
  /** Default 8123; 0 picks a free port. */
  port?: number;
  /** Default: ClickHouse's `default` user with an empty password. */
  users?: HttpUser[];
  /** Largest body held in memory whole (a statement, or insert data that cannot be streamed). Default 256 MiB. */
  maxBufferedBytes?: number;
  /** Streamed inserts go to the engine in pieces of about this size. Default 16 MiB. */
  insertChunkBytes?: number;
  /** How long close() lets running requests finish before cutting connections. Default 5 s. */
  closeGraceMs?: number;
  /** Origin and Host checks (see core/http-guard.ts). Default: no browser origin allowed. */
  browser?: BrowserPolicy;
  /** Where the detail of an internal error goes; the client gets a generic message with the query id. */
  logger?: Logger;
};

export type ClickHouseHttpServer = { url: string; port: number; close: () => Promise<void> };

const OK = 'Ok.\n';
const NO_HANDLER = (path: string) =>
  `There is no handle ${path}\n\nUse / or /ping for health checks.\nSend queries with POST / (query in the body) or GET /?query=...\n`;

/** A query id may not run twice at once (ClickHouse's QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING). */
class RunningQueries {
  readonly #ids = new Set<string>();
  claim(id: string): () => void {
    if (this.#ids.has(id)) throw new ClickHouseHttpError(CH.QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING, `Query with id = ${id} is already running`);
    this.#ids.add(id);
    return () => this.#ids.delete(id);
  }
}

type Handler = { users: UserDirectory; running: RunningQueries; ctx: ExecuteContext; logger?: Logger | undefined };

/**
 * ClickHouse's errors go to the client as a server sends them (clients parse them); anything else
 * (a failure of ours, not the engine's) is logged in full and answered with a generic message.
 */
function clientFacing(err: unknown, queryId: string, logger: Logger | undefined): ClickHouseHttpError {
  const ch = toClickHouseError(err);
  const internal = !(err instanceof ClickHouseHttpError) && (ch.code === CH.UNKNOWN_EXCEPTION || ch.code === CH.STD_EXCEPTION);
  if (!internal) return ch;
  logger?.error({ err, queryId }, 'ClickHouse HTTP request failed');
  return new ClickHouseHttpError(ch.code, `Internal error of the endpoint (query id ${queryId}); the detail is in the server log`);
}

async function handleQuery(req: IncomingMessage, res: ServerResponse, url: URL, h: Handler): Promise<void> {
  let parsed: ParsedRequest | undefined;
  try {
    parsed = parseRequest(req, url);
    // Credentials are checked before any of the body is read.
    const caller = h.users.authenticate(extractCredentials(req.headers, parsed.params.reserved));
    const release = h.running.claim(parsed.queryId);
    try {
      const incoming = await readStatement(req, parsed, h.ctx.maxBufferedBytes);
      await execute(res, parsed, caller, incoming, h.ctx);
    } finally {
      release();
    }
  } catch (err) {
    const queryId = parsed?.queryId ?? randomUUID();
    sendError(res, clientFacing(err, queryId, h.logger), h.ctx.engine.version, queryId);
  }
}

function route(req: IncomingMessage, res: ServerResponse, h: Handler): Promise<void> | void {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const method = req.method ?? 'GET';
  const readMethod = method === 'GET' || method === 'HEAD';
  if (url.pathname === '/ping' || url.pathname === '/replicas_status') return sendText(res, readMethod ? 200 : 405, readMethod ? OK : 'Use GET\n');
  if (url.pathname !== '/') return sendText(res, 404, NO_HANDLER(url.pathname));
  if (readMethod && !url.searchParams.has('query')) return sendText(res, 200, OK);
  if (!readMethod && method !== 'POST') return sendText(res, 405, 'Use GET or POST\n');
  return handleQuery(req, res, url, h);
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(new ClickHouseServerError(ServerErrorCodes.LISTEN_FAILED, `cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

const urlHost = (host: string): string => (host.includes(':') && !host.startsWith('[') ? `[${host}]` : host);

/**
 * Serves the engine over ClickHouse's HTTP interface: `@clickhouse/client`, curl and any other
 * ClickHouse HTTP client can use it by URL. Prints nothing; the caller logs `url`.
 */
export async function startClickHouseHttpServer(options: ClickHouseHttpServerOptions): Promise<ClickHouseHttpServer> {
  const host = options.host ?? '127.0.0.1';
  const users = new UserDirectory(options.users);
  assertSafeBind(host, users);
  const handler: Handler = {
    users,
    running: new RunningQueries(),
    logger: options.logger,
    ctx: {
      engine: options.engine,
      maxBufferedBytes: options.maxBufferedBytes ?? 256 * 1024 * 1024,
      insertChunkBytes: options.insertChunkBytes ?? 16 * 1024 * 1024,
    },
  };
  const browser = options.browser ?? NO_BROWSERS;
  const server = createServer((req, res) => {
    if (guardRequest(req, res, host, browser)) return;
    void Promise.resolve(route(req, res, handler)).catch(() => res.destroy());
  });
  // A streamed insert may take longer than Node's default 5-minute request timeout.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 10_000;
  const port = await listen(server, host, options.port ?? 8123);
  return {
    url: `http://${urlHost(host)}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), options.closeGraceMs ?? 5_000);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

export type EmbeddedClickHouseServer = ClickHouseHttpServer & { path: string };

/**
 * For `tidemark up` and `tidemark clickhouse`: when ClickHouse is embedded (no CLICKHOUSE_URL),
 * opens chDB on the data directory and serves it; undefined when a server URL is configured.
 * Unless told otherwise, it serves the users of `endpointUsers`, the ones every command logs in as.
 */
export async function serveEmbeddedClickHouse(
  config: Config,
  options: Omit<ClickHouseHttpServerOptions, 'engine'> = {},
): Promise<EmbeddedClickHouseServer | undefined> {
  const target = clickHouseTarget(config);
  if (target.kind !== 'embedded') return undefined;
  mkdirSync(target.path, { recursive: true });
  const users = options.users ?? endpointUsers(config);
  const engine = await ChdbEngine.open({ path: target.path });
  try {
    const server = await startClickHouseHttpServer({ browser: config.browser, logger: createLogger('clickhouse-http'), ...options, users, engine });
    return {
      ...server,
      path: target.path,
      close: async () => {
        await server.close();
        await engine.close();
      },
    };
  } catch (err) {
    await engine.close();
    throw err;
  }
}
