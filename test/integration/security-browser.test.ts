import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager, jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChdbEngine } from '../../src/clickhouse/http-server/engine.ts';
import { startClickHouseHttpServer } from '../../src/clickhouse/http-server/server.ts';
import { isLoopback, judge, NO_BROWSERS, type BrowserPolicy } from '../../src/core/http-guard.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createRegistry } from '../../src/core/metrics.ts';
import { startHttpGateway } from '../../src/ingest/http/server.ts';
import { serveMonitorHttp } from '../../src/monitor/http.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { testConfig } from '../harness/config.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

/**
 * Issue 20, point 2: no HTTP listener can be driven by a web page the operator happens to open.
 * The rule is one module (core/http-guard.ts); each listener is checked over real HTTP with the
 * headers a browser would send for a cross-origin POST, an <img>, and a DNS-rebound name.
 */

type Reply = { status: number; body: string; headers: Record<string, string | string[] | undefined> };

/** node:http, since fetch will not let a caller set Host. */
function send(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('the browser rule (judge)', () => {
  const policy: BrowserPolicy = { origins: ['http://localhost:3000'], hosts: ['tidemark.internal'], cors: true };
  const at = (headers: Record<string, string>, bind = '127.0.0.1', p: BrowserPolicy = policy) => judge({ headers }, bind, p);

  it('knows loopback names and addresses', () => {
    for (const name of ['localhost', '127.0.0.1', '127.9.8.7', '[::1]', '::1', '::ffff:127.0.0.1', 'LOCALHOST', 'localhost.']) expect([name, isLoopback(name)]).toEqual([name, true]);
    for (const name of ['0.0.0.0', '10.0.0.1', 'localhost.evil.com', 'evil.com', '::', '[::2]', '128.0.0.1']) expect([name, isLoopback(name)]).toEqual([name, false]);
  });

  it('on a loopback bind, accepts loopback Host names with or without a port, and configured ones', () => {
    for (const host of ['localhost', 'localhost:8123', '127.0.0.1:8080', '[::1]:8123', '[::1]', 'tidemark.internal:80', 'Tidemark.Internal']) {
      expect([host, at({ host }).allowed]).toEqual([host, true]);
    }
    for (const host of ['evil.com', 'evil.com:8123', '127.0.0.1.nip.io', 'localhost.evil.com:8123', '10.0.0.2']) {
      expect([host, at({ host }).allowed]).toEqual([host, false]);
    }
    // Bound elsewhere, the Host is not judged (credentials guard such a bind).
    expect(at({ host: 'evil.com' }, '0.0.0.0').allowed).toBe(true);
  });

  it('refuses any Origin but the allowed ones and the listener\'s own', () => {
    expect(at({ host: 'localhost:8123', origin: 'http://localhost:3000' })).toEqual({ allowed: true, corsOrigin: 'http://localhost:3000' });
    expect(at({ host: 'localhost:8123', origin: 'http://localhost:3000' }, '127.0.0.1', { ...policy, cors: false })).toEqual({ allowed: true });
    expect(at({ host: 'localhost:8123', origin: 'http://localhost:8123' })).toEqual({ allowed: true });
    for (const origin of ['http://evil.com', 'null', 'http://localhost:3001', 'https://localhost:3000', 'http://localhost:8124', 'garbage']) {
      expect([origin, at({ host: 'localhost:8123', origin }).allowed]).toEqual([origin, false]);
    }
    // Same origin counts only under a trusted Host: a rebound name matching its own Origin is refused.
    expect(at({ host: 'evil.com:8123', origin: 'http://evil.com:8123' }, '0.0.0.0', NO_BROWSERS).allowed).toBe(false);
  });

  it('refuses what a browser marks as coming from another site, without an Origin (an <img>)', () => {
    expect(at({ host: 'localhost', 'sec-fetch-site': 'cross-site' }).allowed).toBe(false);
    expect(at({ host: 'localhost', 'sec-fetch-site': 'same-site' }).allowed).toBe(false);
    expect(at({ host: 'localhost', 'sec-fetch-site': 'none' }).allowed).toBe(true);
    expect(at({ host: 'localhost', 'sec-fetch-site': 'same-origin' }).allowed).toBe(true);
    // curl and clients send neither.
    expect(at({ host: 'localhost:8123' }).allowed).toBe(true);
  });

  it('rejects an invalid origin in the config', () => {
    expect(() => testConfig({ browser: { origins: ['localhost:3000'] } })).toThrow(/is not an origin/);
    expect(testConfig({ browser: { origins: ['http://LOCALHOST:3000/'] } }).browser.origins).toEqual(['http://localhost:3000']);
  });
});

/** The same checks over real HTTP against a listener; `path`/`method` is something it serves with 200 or 202. */
async function checkListener(base: string, ok: { method: string; path: string; body?: string; headers?: Record<string, string>; status: number }): Promise<void> {
  const port = new URL(base).port;
  const go = (headers: Record<string, string>) => send(`${base}${ok.path}`, { method: ok.method, headers: { ...ok.headers, ...headers }, ...(ok.body ? { body: ok.body } : {}) });
  expect((await go({})).status).toBe(ok.status);
  expect((await go({ host: `localhost:${port}` })).status).toBe(ok.status);
  expect((await go({ host: `[::1]:${port}` })).status).toBe(ok.status);
  const rebound = await go({ host: `attacker.example:${port}` });
  expect([rebound.status, rebound.body]).toEqual([403, expect.stringMatching(/DNS rebinding/)]);
  const crossOrigin = await go({ origin: 'http://attacker.example', 'content-type': 'text/plain' });
  expect([crossOrigin.status, crossOrigin.body]).toEqual([403, expect.stringMatching(/Origin "http:\/\/attacker.example" is not allowed/)]);
  expect(crossOrigin.headers['access-control-allow-origin']).toBeUndefined();
  expect((await go({ origin: 'null' })).status).toBe(403);
  expect((await go({ 'sec-fetch-site': 'cross-site' })).status).toBe(403);
  // Its own origin (a page it serves) is fine; no CORS headers unless configured.
  const own = await go({ origin: `http://127.0.0.1:${port}` });
  expect(own.status).toBe(ok.status);
  expect(own.headers['access-control-allow-origin']).toBeUndefined();
  const allowed = await go({ origin: 'http://localhost:3000' });
  expect(allowed.status).toBe(ok.status);
  expect(allowed.headers['access-control-allow-origin']).toBe('http://localhost:3000');
  const preflight = await send(`${base}${ok.path}`, { method: 'OPTIONS', headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
  expect([preflight.status, preflight.headers['access-control-allow-origin'], preflight.headers['access-control-allow-methods']]).toEqual([204, 'http://localhost:3000', 'GET, POST, OPTIONS']);
  expect((await send(`${base}${ok.path}`, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } })).status).toBe(403);
}

const BROWSER: BrowserPolicy = { origins: ['http://localhost:3000'], hosts: [], cors: true };

describe('every HTTP listener applies it', () => {
  let dataDir: string;
  let engine: ChdbEngine;
  let nats: TestNats;
  let nc: NatsConnection;
  const closers: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'tidemark-sec-browser-'));
    engine = await ChdbEngine.open({ path: dataDir });
    nats = await startTestNats();
    nc = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await nc?.close();
    await nats?.dispose();
    await engine?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('the ClickHouse endpoint: a cross-origin text/plain POST cannot create a table', async () => {
    const server = await startClickHouseHttpServer({ engine, port: 0, browser: BROWSER });
    closers.push(() => server.close());
    await checkListener(server.url, { method: 'POST', path: '/', body: 'SELECT 1', status: 200 });
    const attack = await send(`${server.url}/`, { method: 'POST', headers: { origin: 'http://attacker.example', 'content-type': 'text/plain' }, body: 'CREATE TABLE pwned (x UInt8) ENGINE = Memory' });
    expect(attack.status).toBe(403);
    expect((await send(`${server.url}/?query=${encodeURIComponent("EXISTS TABLE pwned")}`)).body).toBe('0\n');
    // Without a policy nothing from a browser is allowed, not even the origin a developer might expect.
    const strict = await startClickHouseHttpServer({ engine, port: 0 });
    closers.push(() => strict.close());
    expect((await send(`${strict.url}/?query=SELECT%201`, { headers: { origin: 'http://localhost:3000' } })).status).toBe(403);
  });

  it('the HTTP gateway: a cross-origin POST /v1/events is refused before it is read', async () => {
    const config = testConfig({ http: { port: 0 }, browser: BROWSER });
    await ensureTopology(await jetstreamManager(nc), config);
    const logger = createLogger('security-browser');
    logger.level = 'silent';
    const gateway = await startHttpGateway({ config, js: jetstream(nc), nc, logger, registry: createRegistry() });
    closers.push(() => gateway.close());
    await checkListener(gateway.url, { method: 'GET', path: '/healthz', status: 200 });
    const event = JSON.stringify({ source: 'store-1', type: 'sale', occurredAt: new Date().toISOString(), data: { amount: '1.00' } });
    expect((await send(`${gateway.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: event })).status).toBe(202);
    expect((await send(`${gateway.url}/v1/events`, { method: 'POST', headers: { origin: 'http://attacker.example', 'content-type': 'text/plain' }, body: event })).status).toBe(403);
  });

  it('the HTTP gateway refuses to listen beyond loopback without a token', async () => {
    const logger = createLogger('security-browser');
    logger.level = 'silent';
    const exposed = testConfig({ http: { host: '0.0.0.0', port: 0 } });
    await expect(startHttpGateway({ config: exposed, js: jetstream(nc), nc, logger, registry: createRegistry() })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/refusing to serve the HTTP gateway on 0\.0\.0\.0 without a token.*TIDEMARK_HTTP_TOKEN/),
    });
    const withToken = await startHttpGateway({ config: testConfig({ http: { host: '0.0.0.0', port: 0, token: 'gw-token' } }), js: jetstream(nc), nc, logger, registry: createRegistry() });
    closers.push(() => withToken.close());
    const refused = await send(`http://127.0.0.1:${withToken.port}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(refused.status).toBe(401);
  });

  it('the monitor probes', async () => {
    const monitor = await serveMonitorHttp({ host: '127.0.0.1', port: 0, registry: createRegistry(), ready: async () => ({ ready: true }), browser: BROWSER });
    closers.push(() => monitor.close());
    await checkListener(monitor.url, { method: 'GET', path: '/healthz', status: 200 });
  });
});
