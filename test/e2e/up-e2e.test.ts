import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { natsServerVersion, freePort, startNatsServer } from '../../src/nats/embedded-server.ts';
import { isTidemarkError } from '../../src/core/errors.ts';
import { exited } from '../harness/processes.ts';
import { waitFor } from '../harness/streams.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-up-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tidemark up on embedded defaults', () => {
  it('starts nats-server and ClickHouse, takes events over HTTP, serves SQL, and exits 0 on SIGINT', async () => {
    const natsPort = await freePort();
    const configFile = join(dir, 'tidemark.yaml');
    writeFileSync(configFile, JSON.stringify({
      nats: { embedded: { port: natsPort } },
      clickhouse: { serve: { port: 0 } },
      reports: [{ name: 'revenue', types: ['sale'], timeZone: 'Asia/Taipei', groupBy: ['source'], measures: { amount: { fn: 'sum', field: 'amount' } }, coalesce: '100ms' }],
    }));
    const child = spawn(process.execPath, ['bin/tidemark.mjs', 'up', '--config', configFile], {
      env: { ...process.env, TIDEMARK_DATA_DIR: join(dir, 'data'), TIDEMARK_HTTP_PORT: '0', LOG_LEVEL: 'warn', NATS_URL: '', CLICKHOUSE_URL: '' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    try {
      const urls = await waitFor(() => {
        const http = /HTTP\s+(http:\/\/\S+)/.exec(stdout)?.[1];
        const sql = /SQL\s+(http:\/\/\S+)/.exec(stdout)?.[1];
        return http && sql ? { http, sql } : undefined;
      }, 30_000, 'the start-up banner');
      expect(stdout).toContain(`NATS        nats://127.0.0.1:${natsPort} (embedded`);

      // an event of today, so the day is open whatever day the suite runs on (a fixed date
      // becomes a day past its close, whose first revision is `amended`)
      const occurredAt = new Date(Date.now() - 60_000).toISOString();
      const posted = await fetch(`${urls.http}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: 'up-1', source: 'store-17', type: 'sale', occurredAt, data: { amount: '129.90' } }),
      });
      expect(posted.status).toBe(202);

      const sql = "SELECT group_key, revision, status, toString(measures['amount']) AS amount FROM tidemark.report_revisions FINAL FORMAT JSONEachRow";
      const row = await waitFor(async () => {
        const text = await (await fetch(`${urls.sql}/?query=${encodeURIComponent(sql)}`)).text();
        return text.trim() ? JSON.parse(text.trim()) as Record<string, unknown> : undefined;
      }, 60_000, 'revision 1 in ClickHouse');
      expect(row).toEqual({ group_key: '["store-17"]', revision: 1, status: 'preliminary', amount: '129.9' });
    } finally {
      child.kill('SIGINT');
      await exited(child);
    }
    expect(child.exitCode).toBe(0);
  }, 90_000);

  it('says how to install nats-server when it is missing', async () => {
    expect(natsServerVersion('nats-server-that-does-not-exist')).toBeUndefined();
    const error = await startNatsServer({ storeDir: join(dir, 'none'), binary: 'nats-server-that-does-not-exist' }).catch((err: unknown) => err);
    expect(isTidemarkError(error, 'NATS_SERVER_MISSING')).toBe(true);
    expect((error as Error).message).toMatch(/apt-get install nats-server/);
  });
});
