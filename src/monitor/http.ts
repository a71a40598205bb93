import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { guardRequest, NO_BROWSERS, type BrowserPolicy } from '../core/http-guard.ts';
import type { Logger } from '../core/logger.ts';
import { redact } from '../core/secrets.ts';

export type MonitorHttp = { url: string; close: () => Promise<void> };

/**
 * `/metrics`, `/healthz` and `/readyz` for a standalone `tidemark monitor` (under
 * `tidemark up` the gateway's server already serves the same process registry).
 */
export async function serveMonitorHttp(options: { host: string; port: number; registry: Registry; ready: () => Promise<{ ready: boolean; reason?: string }>; browser?: BrowserPolicy; logger?: Logger }): Promise<MonitorHttp> {
  const server = createServer((req, res) => {
    if (guardRequest(req, res, options.host, options.browser ?? NO_BROWSERS)) return;
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const reply = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET') return reply(405, JSON.stringify({ error: `${path} accepts GET only` }));
    if (path === '/healthz') return reply(200, JSON.stringify({ status: 'ok' }));
    if (path === '/readyz') {
      options.ready().then(
        (state) => reply(state.ready ? 200 : 503, JSON.stringify(state.ready ? { status: 'ready' } : { status: 'not ready', reason: state.reason })),
        (err: unknown) => reply(503, JSON.stringify({ status: 'not ready', reason: redact((err as Error).message) })),
      );
      return;
    }
    if (path === '/metrics') {
      options.registry.metrics().then(
        (text) => reply(200, text, options.registry.contentType),
        (err: unknown) => {
          const requestId = randomUUID();
          options.logger?.error({ err, requestId }, 'metrics failed');
          reply(500, JSON.stringify({ error: 'internal error', requestId }));
        },
      );
      return;
    }
    reply(404, JSON.stringify({ error: `no route ${path}` }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
