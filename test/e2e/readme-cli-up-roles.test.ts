import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/core/config.ts';
import { openStateStore } from '../../src/reconcile/state-store.ts';
import { exited, spawnTidemarkCaptured, type CapturedTidemark } from '../harness/processes.ts';
import { json, readAll, unpack, waitFor } from '../harness/streams.ts';

// README, One machine, several processes: `npx tidemark up --roles gateway,monitor  # or: the
// owner runs only some roles, and the rest run as separate processes`, and "any other tidemark
// command started in the same data directory without NATS_URL / CLICKHOUSE_URL reads that file
// and uses its servers". Here up runs gateway and processor only; `report`, `monitor` and
// `reconcile stream` run beside it as processes with neither URL set, and each does its job.
const settings = {
  reports: [{ name: 'revenue', types: ['sale'], timeZone: 'UTC', groupBy: ['source'], measures: { amount: { fn: 'sum', field: 'amount' } }, coalesce: '100ms' }],
  slas: [{ name: 'late', source: 'store-*', type: 'sale', maxDelay: '1m' }],
  monitor: { groupWait: '1s', grace: '1s', tick: '100ms' },
  reconciliations: [{
    name: 'settle',
    a: { subject: 'recon.settle.bank', fields: { amount: 'data.amount' }, time: 'at' },
    b: { subject: 'recon.settle.ledger' },
    key: ['txn'],
    fields: { amount: { compare: 'absolute', tolerance: '0.01' } },
    lag: '1h',
    stream: { tick: '50ms' },
  }],
};

let dir: string;
let env: Record<string, string>;
let up: CapturedTidemark;
let urls: { nats: string; http: string; sql: string };
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
const occurredAt = Date.now() - 60_000;
const day = new Date(occurredAt).toISOString().slice(0, 10);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tidemark-up-roles-'));
  writeFileSync(join(dir, 'tidemark.json'), JSON.stringify(settings));
  env = { TIDEMARK_CONFIG: join(dir, 'tidemark.json'), TIDEMARK_DATA_DIR: join(dir, 'data'), TIDEMARK_NATS_PORT: '0', TIDEMARK_HTTP_PORT: '0', TIDEMARK_CLICKHOUSE_HTTP_PORT: '0' };
  up = spawnTidemarkCaptured(['up', '--roles', 'gateway,processor'], env);
  urls = await waitFor(() => {
    if (up.child.exitCode !== null) throw new Error(`up exited: ${up.stderr()}`);
    const out = up.stdout();
    const nats = /NATS\s+(nats:\/\/\S+)/.exec(out)?.[1];
    const http = /HTTP\s+(http:\/\/\S+)/.exec(out)?.[1];
    const sql = /SQL\s+(http:\/\/\S+)/.exec(out)?.[1];
    return nats && http && sql ? { nats, http, sql } : undefined;
  }, 90_000, 'the start-up banner');
  nc = await connect({ servers: urls.nats });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
}, 120_000);

afterAll(async () => {
  await nc?.close();
  up?.child.kill('SIGINT');
  if (up) await exited(up.child);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sql = async (query: string): Promise<string> => (await (await fetch(`${urls.sql}/?query=${encodeURIComponent(query)}`)).text()).trim();
const post = (event: object) => fetch(`${urls.http}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(event) });

/** A role started beside up, in its data directory, with neither NATS_URL nor CLICKHOUSE_URL. */
async function beside(args: string[], running: string): Promise<CapturedTidemark> {
  const role = spawnTidemarkCaptured(args, { ...env, LOG_LEVEL: 'info' });
  const line = await waitFor(() => {
    if (role.child.exitCode !== null) throw new Error(`${args.join(' ')} exited: ${role.stderr()}`);
    return role.stdout().split('\n').find((l) => l.includes(running));
  }, 60_000, `${args.join(' ')} to run`);
  expect(JSON.parse(line)).toMatchObject({ clickhouse: urls.sql });
  return role;
}

async function stop(role: CapturedTidemark): Promise<void> {
  role.child.kill('SIGTERM');
  await exited(role.child);
  expect(role.stderr()).toBe('');
  expect(role.child.exitCode).toBe(0);
}

describe('tidemark up --roles gateway,processor, and the other roles beside it', () => {
  it('runs only the roles it was given: events go gateway → processor → ClickHouse; nobody reads for the monitor', async () => {
    expect(up.stdout()).toContain('Tidemark is up: gateway, processor\n');
    expect((await post({ id: 'r-1', source: 'store-1', type: 'sale', occurredAt: new Date(occurredAt).toISOString(), data: { amount: '12.50' } })).status).toBe(202);
    await waitFor(async () => (await sql("SELECT toString(measures['amount']) FROM tidemark.report_latest WHERE report = 'revenue' AND group_key = '[\"store-1\"]'")) === '12.5', 30_000, 'revision 1');
    // a running role keeps a pull waiting on its durable: the processor's shows one, the monitor's and the alert sink's none
    await waitFor(async () => (await jsm.consumers.info('EVENTS', 'processor')).num_waiting > 0, 30_000, 'the processor to pull');
    // (a monitor run earlier beside up, as below, may have read what came before r-1, never r-1 itself)
    const seq = unpack(await readAll(js, jsm, 'EVENTS')).find((e) => e.event.id === 'r-1')!.msg.seq;
    expect((await jsm.consumers.info('EVENTS', 'processor')).ack_floor.stream_seq).toBeGreaterThanOrEqual(seq);
    const monitor = await jsm.consumers.info('EVENTS', 'monitor');
    expect(monitor.num_waiting).toBe(0);
    expect(monitor.delivered.stream_seq).toBeLessThan(seq);
    expect((await jsm.consumers.info('ALERTS', 'alert-sink')).num_waiting).toBe(0);
  }, 120_000);

  it('tidemark report in the same directory finds up\'s SQL endpoint through the owner file', async () => {
    expect((await post({ id: 'r-2', source: 'store-2', type: 'sale', occurredAt: new Date(occurredAt).toISOString(), data: { amount: '7.25' } })).status).toBe(202);
    await waitFor(async () => (await sql("SELECT count() FROM tidemark.report_latest WHERE report = 'revenue' AND group_key = '[\"store-2\"]'")) === '1', 30_000, 'store-2 revised');
    const report = spawnTidemarkCaptured(['report', '--report', 'revenue', '--day', day], env);
    await exited(report.child);
    expect(report.stderr()).toBe('');
    expect(report.child.exitCode).toBe(0);
    expect(report.stdout()).toMatch(/\nstore-2\s+1\s+preliminary\s+new\s.*\s7\.25\n/);
    expect(report.stdout()).toContain('store-2: agrees with the raw events');
  }, 120_000);

  it('tidemark monitor beside it raises DelayedEvent for a late sale, on ALERTS and in the alerts table', async () => {
    const monitor = await beside(['monitor', '--http-port', '0'], 'monitor running');
    try {
      expect((await post({ id: 'late-1', source: 'store-late', type: 'sale', occurredAt: new Date(Date.now() - 10 * 60_000).toISOString(), data: { amount: '1' } })).status).toBe(202);
      const alert = await waitFor(async () => (await readAll(js, jsm, 'ALERTS')).find((m) => m.subject === 'alerts.delayed.store-late'), 60_000, 'the DelayedEvent alert');
      expect(json(alert)).toMatchObject({ kind: 'DelayedEvent', source: 'store-late', sla: 'late', count: 1 });
      await waitFor(async () => (await sql("SELECT count() FROM tidemark.alerts FINAL WHERE kind = 'DelayedEvent' AND source = 'store-late'")) === '1', 30_000, 'the alert in the alerts table');
    } finally {
      await stop(monitor);
    }
  }, 120_000);

  it('tidemark reconcile stream beside it matches records of both feeds and stores the mismatch', async () => {
    const recon = await beside(['reconcile', 'stream'], 'reconcile stream running');
    try {
      const at = Date.now() - 5 * 60_000;
      nc.publish('recon.settle.bank', JSON.stringify({ txn: 't-1', at, data: { amount: '10.00' } }));
      nc.publish('recon.settle.bank', JSON.stringify({ txn: 't-2', at, data: { amount: '20.00' } }));
      nc.publish('recon.settle.ledger', JSON.stringify({ txn: 't-1', occurredAt: at + 500, amount: '10.005' }));
      nc.publish('recon.settle.ledger', JSON.stringify({ txn: 't-2', occurredAt: at + 500, amount: '20.50' }));
      await nc.flush();
      const store = await openStateStore(js, parseConfig(settings, {}, 'test').reconciliations[0]!);
      const states = await waitFor(async () => {
        const entries = await store.entries();
        const byTxn = Object.fromEntries(entries.map((e) => [e.key.at(-1), e.state]));
        return byTxn['t-1'] === 'matched' && byTxn['t-2'] !== undefined && byTxn['t-2'] !== 'expected' ? byTxn : undefined;
      }, 60_000, 'both keys seen on both sides');
      expect(states).toMatchObject({ 't-1': 'matched' });
      await waitFor(async () => (await sql("SELECT type FROM tidemark.recon_discrepancies FINAL WHERE name = 'settle'")) === 'Mismatch', 30_000, 'the mismatch stored');
    } finally {
      await stop(recon);
    }
  }, 120_000);
});
