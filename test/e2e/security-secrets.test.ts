import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/nats/embedded-server.ts';
import { exited } from '../harness/processes.ts';
import { waitFor } from '../harness/streams.ts';

/**
 * Issue 20, points 4 and 7: a run with every kind of secret set — a NATS password (also inside
 * NATS_URL), a ClickHouse password, the gateway's token, a webhook URL whose path and query are
 * secret and its signing key — drives `tidemark up` and other commands as separate processes,
 * makes them log at debug level, fail and retry, then searches everything they printed.
 */

const SECRETS = {
  nats: 'nats-Pw-7f3a9c1e',
  clickhouse: 'ch-Pw-2b8d4e6f',
  http: 'http-Tok-5c7e9a1b',
  hookPath: 'hookPathSecret-9d1f3b5a',
  hookQuery: 'hookQuery-4e6a8c0d',
  hookKey: 'hook-Key-1a3c5e7g',
};

const dir = mkdtempSync(join(tmpdir(), 'tidemark-sec-secrets-'));
let nats: ChildProcess;
let natsPort: number;
let receiver: Server;
let receiverBase: string;
const hookCalls: number[] = [];

beforeAll(async () => {
  natsPort = await freePort();
  nats = spawn('nats-server', ['-js', '-sd', join(dir, 'nats'), '-a', '127.0.0.1', '-p', String(natsPort), '--user', 'tm', '--pass', SECRETS.nats], { stdio: 'ignore' });
  await waitFor(async () => {
    const nc = await connect({ servers: `nats://127.0.0.1:${natsPort}`, user: 'tm', pass: SECRETS.nats }).catch(() => undefined);
    await nc?.close();
    return nc !== undefined;
  }, 60_000, 'nats-server with a password');
  // Fails twice (so the monitor logs retries, URL and all), then takes the alert.
  receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      hookCalls.push(Date.now());
      res.writeHead(hookCalls.length <= 2 ? 503 : 200).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', () => resolve()));
  receiverBase = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});

afterAll(async () => {
  nats?.kill('SIGTERM');
  if (nats) await exited(nats);
  await new Promise((r) => receiver?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

type Run = { child: ChildProcess; output: () => string };

function run(args: string[], env: Record<string, string>): Run {
  const child = spawn(process.execPath, ['bin/tidemark.mjs', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}

const finished = async (r: Run): Promise<string> => {
  await exited(r.child);
  return r.output();
};

function expectNoSecret(output: string): void {
  for (const [name, value] of Object.entries(SECRETS)) {
    expect(output.includes(value) ? `${name} printed` : 'clean').toBe('clean');
    expect(output.includes(encodeURIComponent(value)) ? `${name} printed encoded` : 'clean').toBe('clean');
  }
}

describe('a run with secrets set prints none of them', () => {
  it('tidemark up, its roles, its endpoint and its webhooks; init; a refused --user', async () => {
    const hookUrl = `${receiverBase}/hooks/T0/${SECRETS.hookPath}?token=${SECRETS.hookQuery}`;
    const configFile = join(dir, 'tidemark.yaml');
    writeFileSync(configFile, JSON.stringify({
      clickhouse: { serve: { port: 0 } },
      slas: [{ name: 'late', source: 'store-*', maxDelay: '1m' }],
      monitor: { bucket: '1s', grace: '1s', tick: '100ms', webhooks: [{ url: hookUrl, secretEnv: 'HOOK_KEY', backoff: '100ms', maxAttempts: 5 }] },
    }));
    const env = {
      TIDEMARK_CONFIG: configFile,
      TIDEMARK_DATA_DIR: join(dir, 'data'),
      NATS_URL: `nats://tm:${SECRETS.nats}@127.0.0.1:${natsPort}`,
      NATS_USER: 'tm',
      NATS_PASSWORD: SECRETS.nats,
      CLICKHOUSE_URL: '',
      CLICKHOUSE_USER: 'tidemark',
      CLICKHOUSE_PASSWORD: SECRETS.clickhouse,
      TIDEMARK_HTTP_PORT: '0',
      TIDEMARK_HTTP_TOKEN: SECRETS.http,
      HOOK_KEY: SECRETS.hookKey,
      LOG_LEVEL: 'debug',
    };
    const up = run(['up'], env);
    let all = '';
    try {
      const urls = await waitFor(() => {
        const http = /HTTP\s+(http:\/\/\S+)/.exec(up.output())?.[1];
        const sql = /SQL\s+(http:\/\/\S+)/.exec(up.output())?.[1];
        return http && sql ? { http, sql } : undefined;
      }, 60_000, 'the start-up banner');
      // The banner names NATS by its URL, credentials hidden.
      expect(up.output()).toContain(`NATS        nats://***@127.0.0.1:${natsPort}`);

      // The gateway: with the token, without it, and with a wrong one.
      const event = JSON.stringify({ id: 'late-1', source: 'store-1', type: 'sale', occurredAt: new Date(Date.now() - 10 * 60_000).toISOString(), data: { amount: '1.00' } });
      const ingest = (token?: string) => fetch(`${urls.http}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: event });
      expect((await ingest(SECRETS.http)).status).toBe(202);
      expect((await ingest()).status).toBe(401);
      expect((await ingest(`${SECRETS.http}x`)).status).toBe(401);

      // The endpoint serves the CLICKHOUSE_USER/CLICKHOUSE_PASSWORD user; a wrong password is refused without echo.
      const login = (password: string) => ({ Authorization: `Basic ${Buffer.from(`tidemark:${password}`).toString('base64')}` });
      expect(await (await fetch(`${urls.sql}/?query=SELECT%201`, { headers: login(SECRETS.clickhouse) })).text()).toBe('1\n');
      const wrong = await fetch(`${urls.sql}/?query=SELECT%201`, { headers: login(`${SECRETS.clickhouse}x`) });
      expect(wrong.status).toBe(403);
      all += await wrong.text();

      // The late event raises an alert; its webhook fails twice, then takes it.
      await waitFor(() => hookCalls.length >= 3, 60_000, 'the webhook to be retried and delivered');

      // Another command against the same NATS and endpoint, as a separate process.
      // Pointed at the port the endpoint got, it logs in there as the same user (chDB's directory is taken).
      const init = run(['init'], { ...env, TIDEMARK_CLICKHOUSE_HTTP_PORT: new URL(urls.sql).port });
      all += await finished(init);
      expect([init.child.exitCode, init.output().slice(-2000)]).toEqual([0, expect.stringMatching(/\(http:\/\/127\.0\.0\.1:\d+\)/)]);
      expect(all).toMatch(/topology ready on nats:\/\/\*\*\*@127\.0\.0\.1/);
    } finally {
      up.child.kill('SIGINT');
      all += await finished(up);
    }
    expect(up.child.exitCode).toBe(0);

    // A password on the command line is refused, and not echoed.
    const argv = run(['clickhouse', '--port', '0', '--user', `alice:${SECRETS.clickhouse}`], env);
    const refused = await finished(argv);
    expect(refused).toMatch(/--user is gone/);
    all += refused;

    // A command that fails while connecting, with credentials in its URL.
    const failing = run(['init'], { ...env, CLICKHOUSE_URL: `http://tidemark:${SECRETS.clickhouse}@127.0.0.1:1`, NATS_URL: `nats://tm:${SECRETS.nats}@127.0.0.1:${natsPort}` });
    all += await finished(failing);
    expect(failing.child.exitCode).not.toBe(0);

    // Proof the logs were looked at, with the places where a secret would have shown.
    expect(all).toMatch(/webhook failed; retrying/);
    expect(all).toMatch(/"url":"http:\/\/127\.0\.0\.1:\d+\/…"/);
    expectNoSecret(all);
  }, 180_000);
});
