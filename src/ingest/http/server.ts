import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import type { Config } from '../../core/config.ts';
import { ErrorCodes, TidemarkError } from '../../core/errors.ts';
import { guardRequest, isLoopback } from '../../core/http-guard.ts';
import type { Logger } from '../../core/logger.ts';
import { ingestMetricsFor, metricsRegistry } from '../../core/metrics.ts';
import type { UiClickHouse } from '../../ui/api.ts';
import { handleUi, isUiPath } from '../../ui/routes.ts';
import { bearerAuthorized } from './auth.ts';
import { handleIngest, type IngestDeps } from './handlers.ts';
import { requestUrl } from './request-url.ts';
import { sendJson } from './respond.ts';
import type { Readiness } from '../../core/role.ts';

export type { Readiness } from '../../core/role.ts';
/** What else the process needs before it should get traffic, e.g. ClickHouse reachable. */
export type ReadinessCheck = () => Readiness | Promise<Readiness>;

export type HttpGatewayOptions = {
  config: Config;
  js: JetStreamClient;
  nc: NatsConnection;
  logger: Logger;
  ready?: ReadinessCheck;
  /** defaults to the process registry */
  registry?: Registry;
  /** where the page under /ui reads its figures; without it the page's API answers 503 */
  ui?: UiClickHouse;
};

export type HttpGateway = { url: string; port: number; close: () => Promise<void> };

/** A probe that hangs is as bad as one that fails, and must not pile up requests. */
const PROBE_TIMEOUT_MS = 2_000;
/** How long close() lets in-flight requests finish their publishes before cutting connections. */
const CLOSE_GRACE_MS = 5_000;

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

async function readiness(nc: NatsConnection, ready: ReadinessCheck | undefined): Promise<Readiness> {
  try {
    // rtt() fails at once while disconnected, where a plain flush would wait for the reconnect
    await withTimeout(nc.rtt(), PROBE_TIMEOUT_MS, 'NATS');
  } catch (err) {
    return { ready: false, reason: `NATS is not connected: ${(err as Error).message}` };
  }
  if (!ready) return { ready: true };
  try {
    return await withTimeout(Promise.resolve(ready()), PROBE_TIMEOUT_MS, 'the readiness check');
  } catch (err) {
    return { ready: false, reason: (err as Error).message };
  }
}

const ROUTES: Record<string, string> = { '/v1/events': 'POST', '/healthz': 'GET', '/readyz': 'GET', '/metrics': 'GET' };

const NO_UI: UiClickHouse = { unavailable: 'this gateway has no ClickHouse to read from: set CLICKHOUSE_URL, or open the page of `tidemark up`' };

/** Serves `POST /v1/events`, `/healthz`, `/readyz`, `/metrics` (SPEC §8, §9) and the page under `/ui` on `config.http`. */
export async function startHttpGateway(options: HttpGatewayOptions): Promise<HttpGateway> {
  const { config, js, nc, logger, ready } = options;
  const registry = options.registry ?? metricsRegistry;
  const deps: IngestDeps = { config, js, nc, logger, metrics: ingestMetricsFor(registry) };
  const token = config.http.token;
  if (!isLoopback(config.http.host) && !token) {
    throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `refusing to serve the HTTP gateway on ${config.http.host} without a token: anything that reaches it could publish events. Set TIDEMARK_HTTP_TOKEN (or TIDEMARK_HTTP_TOKEN_FILE, http.token), or bind 127.0.0.1`);
  }

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = requestUrl(req.url);
    if (!url) return sendJson(res, 400, { error: 'the request target is not a path' });
    const path = url.pathname;
    if (isUiPath(path)) return handleUi(req, res, url, { config, clickhouse: options.ui ?? NO_UI });
    const method = ROUTES[path];
    if (method === undefined) return sendJson(res, 404, { error: `no route ${path}` });
    if (req.method !== method) return sendJson(res, 405, { error: `${path} accepts ${method} only` }, { allow: method });
    switch (path) {
      case '/healthz':
        return sendJson(res, 200, { status: 'ok' });
      case '/readyz': {
        const state = await readiness(nc, ready);
        return state.ready
          ? sendJson(res, 200, { status: 'ready' })
          : sendJson(res, 503, { status: 'not ready', reason: state.reason ?? 'the readiness check said not ready' });
      }
      case '/metrics': {
        const text = await registry.metrics();
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
        return;
      }
      case '/v1/events':
        if (token && !bearerAuthorized(req.headers.authorization, token)) {
          return sendJson(res, 401, { error: 'missing or wrong bearer token' }, { 'www-authenticate': 'Bearer', connection: 'close' });
        }
        return handleIngest(req, res, deps, url);
    }
  };

  const server = createServer((req, res) => {
    if (guardRequest(req, res, config.http.host, config.browser)) return;
    route(req, res).catch((err: unknown) => {
      // a client that hangs up mid-body is its own business, not a server error
      const requestId = randomUUID();
      logger[req.destroyed ? 'debug' : 'error']({ err, requestId, method: req.method, url: req.url }, 'http request failed');
      // the detail stays in the log: an error message can carry paths, URLs or credentials
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error', requestId });
      else res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.http.port, config.http.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host;

  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        const force = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
        server.close((err) => {
          clearTimeout(force);
          if (err) reject(err);
          else resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
