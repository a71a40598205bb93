import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPlainNats, type PlainNats } from '../harness/nats.ts';
import { exited, spawnTidemarkCaptured, type CapturedTidemark } from '../harness/processes.ts';
import { waitFor } from '../harness/streams.ts';

// The Debian package's service: nats-server on the port `up` wants, without JetStream.
let plain: PlainNats;
let up: CapturedTidemark;
let dir: string;
let env: Record<string, string>;
let urls: { nats: string; http: string; sql: string };

const config = {
  reports: [{ name: 'revenue', types: ['sale'], timeZone: 'UTC', groupBy: ['source'], measures: { amount: { fn: 'sum', field: 'amount' } }, coalesce: '100ms' }],
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tidemark-up-startup-'));
  writeFileSync(join(dir, 'tidemark.yaml'), JSON.stringify(config));
  plain = await startPlainNats();
  env = {
    TIDEMARK_CONFIG: join(dir, 'tidemark.yaml'),
    TIDEMARK_DATA_DIR: join(dir, 'data'),
    TIDEMARK_NATS_PORT: String(plain.port),
    TIDEMARK_HTTP_PORT: '0',
    TIDEMARK_CLICKHOUSE_HTTP_PORT: '0',
  };
  up = spawnTidemarkCaptured(['up'], env);
  urls = await waitFor(() => {
    const out = up.stdout();
    const nats = /NATS\s+(nats:\/\/\S+)/.exec(out)?.[1];
    const http = /HTTP\s+(http:\/\/\S+)/.exec(out)?.[1];
    const sql = /SQL\s+(http:\/\/\S+)/.exec(out)?.[1];
    if (up.child.exitCode !== null) throw new Error(`up exited: ${up.stderr()}`);
    return nats && http && sql ? { nats, http, sql } : undefined;
  }, 90_000, 'the start-up banner');
}, 120_000);

afterAll(async () => {
  up?.child.kill('SIGINT');
  if (up) await exited(up.child);
  await plain?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const sql = async (query: string): Promise<string> => (await (await fetch(`${urls.sql}/?query=${encodeURIComponent(query)}`)).text()).trim();

describe('tidemark up when a plain nats-server (no JetStream) holds its port', () => {
  it('starts its own nats-server on another port, says why, prints the URL and a matching nats pub line', () => {
    expect(urls.nats).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    expect(urls.nats).not.toBe(`nats://127.0.0.1:${plain.port}`);
    expect(up.stdout()).toContain(`Publish: nats pub -s ${urls.nats} ingest.store-17.sale`);
    expect(up.stderr()).toContain(`port ${plain.port} is held by nats-server 2.9.10 without JetStream (pid ${plain.pid}`);
    expect(up.stderr()).toContain('starting the embedded nats-server on a free port instead');
  });

  it('takes events over NATS (at the printed URL) and over HTTP into ClickHouse', async () => {
    const occurredAt = new Date(Date.now() - 60_000).toISOString();
    const nc: NatsConnection = await connect({ servers: urls.nats });
    try {
      nc.publish('ingest.store-17.sale', JSON.stringify({ id: 'via-nats', occurredAt, data: { amount: '1.50' } }));
      await nc.flush();
    } finally {
      await nc.close();
    }
    const posted = await fetch(`${urls.http}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'via-http', source: 'store-17', type: 'sale', occurredAt, data: { amount: '2.25' } }),
    });
    expect(posted.status).toBe(202);
    const ids = await waitFor(async () => {
      const text = await sql('SELECT groupArray(id) AS ids FROM (SELECT id FROM tidemark.events FINAL ORDER BY id) FORMAT JSONEachRow');
      const parsed = text ? (JSON.parse(text) as { ids: string[] }).ids : [];
      return parsed.length === 2 ? parsed : undefined;
    }, 60_000, 'both events in ClickHouse');
    expect(ids).toEqual(['via-http', 'via-nats']);
  }, 60_000);

  it('a second up in the same data directory prints one line naming the first one\'s pid and exits 2', async () => {
    const second = spawnTidemarkCaptured(['up'], env);
    await exited(second.child);
    expect(second.child.exitCode).toBe(2);
    const lines = second.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`is in use by \`tidemark up\` (pid ${up.child.pid}`);
    expect(lines[0]).toContain('TIDEMARK_DATA_DIR');
    expect(second.stderr()).not.toMatch(/^\s+at /m);
    expect(second.stdout()).toBe('');
  }, 60_000);

  // Every role finds up's NATS and its ClickHouse endpoint through the data directory's owner file;
  // one that opened the embedded engine itself would fail on chDB's lock instead.
  const ROLES: Array<{ args: string[]; running: string; clickhouse: boolean }> = [
    { args: ['processor'], running: 'processor running', clickhouse: true },
    { args: ['monitor', '--http-port', '0'], running: 'monitor running', clickhouse: true },
    { args: ['saga', 'run'], running: 'saga orchestrator running', clickhouse: true },
    { args: ['reconcile', 'stream'], running: 'reconcile stream running', clickhouse: true },
    { args: ['gateway'], running: 'gateway running', clickhouse: false },
  ];

  it.each(ROLES)('$args.0 $args.1 started in the same directory uses up\'s servers, not the one on the port', async (role) => {
    const started = spawnTidemarkCaptured(role.args, { ...env, LOG_LEVEL: 'info' });
    try {
      const line = await waitFor(() => {
        if (started.child.exitCode !== null) throw new Error(`${role.args.join(' ')} exited: ${started.stderr()}`);
        return started.stdout().split('\n').find((l) => l.includes(role.running));
      }, 45_000, `${role.args.join(' ')} to run`);
      if (role.clickhouse) expect(JSON.parse(line)).toMatchObject({ clickhouse: urls.sql });
      expect(started.stderr()).toBe('');
    } finally {
      started.child.kill('SIGTERM');
      await exited(started.child);
    }
    expect(started.child.exitCode).toBe(0);
  }, 60_000);

  it('doctor passes on this set-up, and names who holds the port', async () => {
    const doctor = spawnTidemarkCaptured(['doctor'], env);
    await exited(doctor.child);
    const out = doctor.stdout();
    expect(out).toContain('✓ nats-server 2.9.10 on PATH');
    expect(out).toContain(`! port ${plain.port} (embedded NATS) is held by nats-server 2.9.10 without JetStream (pid ${plain.pid}`);
    expect(out).toContain(`✓ NATS at ${urls.nats} (tidemark up): nats-server 2.9.10, JetStream enabled`);
    expect(out).toMatch(/✓ ClickHouse at http:\/\/127\.0\.0\.1:\d+ \(tidemark up\): version \d+\./);
    expect(out).toMatch(/✓ clock is \d+ ms (ahead of|behind) the NATS server's/);
    expect(out).toContain(`is in use by \`tidemark up\` (pid ${up.child.pid}`);
    expect(out).not.toContain('✗');
    expect(out).toContain('all checks passed');
    expect(doctor.child.exitCode).toBe(0);
  }, 60_000);
});
