import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse } from '../../src/clickhouse/client.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { durableName, ensureReconStream } from '../../src/reconcile/feeds.ts';
import { testConfig } from '../harness/config.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { json, readAll, waitFor } from '../harness/streams.ts';

const KEYS = 4_000;
const MISSING = 300; // in B: healed by a correction each
const MISMATCHED = 200; // status differs: manual
const DUPLICATED = 100; // a second B copy: manual

let server: TestNats;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let dir: string;
let clickhouse: ClickHouseClient | undefined;
let child: ChildProcess | undefined;

const settings = (natsUrl: string) => ({
  dataDir: dir,
  nats: { url: natsUrl, ackWait: '2s' },
  reconciliations: [{
    name: 'crash',
    a: { subject: 'recon.crash.a' },
    b: { subject: 'recon.crash.b' },
    key: ['txn'],
    fields: { amount: { compare: 'absolute', tolerance: '0.01' }, status: { compare: 'exact' } },
    lag: '1s',
    heal: { MissingInB: 'publish' },
    correction: { fields: ['amount'] },
    alert: { threshold: 1_000_000 },
    stream: { batchSize: 200, tick: '50ms' },
  }],
});

/** The streaming role alone in a child process, so it can be killed with SIGKILL (chDB data lives in `dir`). */
function startChild(): ChildProcess {
  const src = (path: string) => JSON.stringify(resolve('src', path));
  const code = `
    import { jetstream, jetstreamManager } from '@nats-io/jetstream';
    import { connect } from '@nats-io/transport-node';
    import pino from 'pino';
    const { parseConfig } = await import(${src('core/config.ts')});
    const { openClickHouse } = await import(${src('clickhouse/client.ts')});
    const { migrate } = await import(${src('clickhouse/migrations.ts')});
    const { startReconcileStreaming } = await import(${src('reconcile/streaming.ts')});
    const config = parseConfig(JSON.parse(process.env.RECON_SETTINGS));
    const nc = await connect({ servers: config.nats.url });
    const clickhouse = openClickHouse(config);
    await migrate(clickhouse, config.clickhouse.database);
    const role = await startReconcileStreaming({ config, js: jetstream(nc), jsm: await jetstreamManager(nc), clickhouse, logger: pino({ level: 'warn' }) });
    process.on('SIGTERM', async () => { await role.stop(); await nc.drain(); await clickhouse.close(); process.exit(0); });
  `;
  return spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    env: { ...process.env, RECON_SETTINGS: JSON.stringify(settings(server.url)) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

const exited = (child: ChildProcess) => new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));

beforeAll(async () => {
  server = await startTestNats();
  dir = mkdtempSync(join(tmpdir(), 'tidemark-recon-crash-'));
  nc = await connect({ servers: server.url });
  jsm = await jetstreamManager(nc);
  js = jetstream(nc);
  await ensureTopology(jsm, testConfig());
  await ensureReconStream(jsm, 1);
});

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await exited(child);
  }
  await clickhouse?.close();
  await nc?.close();
  await server?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const count = async (stream: string, subject: string) => (await jsm.streams.info(stream, { subjects_filter: subject })).state.subjects?.[subject] ?? 0;

async function caughtUp(): Promise<boolean> {
  for (const side of ['A', 'B'] as const) {
    for (const role of ['match', 'expiry'] as const) {
      const info = await jsm.consumers.info('RECON', durableName('crash', side, role)).catch(() => undefined);
      if (!info || info.num_pending > 0 || info.num_ack_pending > 0) return false;
    }
  }
  return true;
}

describe('streaming reconciler killed with SIGKILL mid-stream', () => {
  it('neither loses nor repeats a discrepancy, a heal or a queue entry after the restart', async () => {
    child = startChild();
    const occurredAt = Date.now();
    const publishKeys = async (from: number, to: number) => {
      for (let txn = from; txn < to; txn++) {
        nc.publish('recon.crash.a', JSON.stringify({ txn, occurredAt, amount: '1.00', status: 'paid' }));
        if (txn < MISSING) continue;
        const status = txn < MISSING + MISMATCHED ? 'void' : 'paid';
        nc.publish('recon.crash.b', JSON.stringify({ txn, occurredAt, amount: '1.00', status }));
        if (txn >= KEYS - DUPLICATED) nc.publish('recon.crash.b', JSON.stringify({ txn, occurredAt, amount: '1.00', status }));
      }
      await nc.flush();
    };
    // the duplicated keys come only after the kill, so the kill lands part-way however fast the first run is
    await publishKeys(0, KEYS - DUPLICATED);
    // kill it once it is visibly part-way through acting on findings
    await waitFor(async () => (await count('RECON', 'recon.manual.crash')) + (await count('INGEST', 'ingest.recon.adjustment')) >= 20, 60_000, 'first actions');
    child.kill('SIGKILL');
    await exited(child);
    const before = (await count('RECON', 'recon.manual.crash')) + (await count('INGEST', 'ingest.recon.adjustment'));
    expect(before).toBeLessThan(MISSING + MISMATCHED + DUPLICATED);
    await publishKeys(KEYS - DUPLICATED, KEYS);

    child = startChild();
    await waitFor(async () => (await count('INGEST', 'ingest.recon.adjustment')) === MISSING && (await count('RECON', 'recon.manual.crash')) === MISMATCHED + DUPLICATED && caughtUp(), 90_000, 'every action after the restart');
    child.kill('SIGTERM');
    await exited(child);

    const corrections = (await readAll(js, jsm, 'INGEST')).filter((m) => m.subject === 'ingest.recon.adjustment').map((m) => json<{ id: string; data: { amount: string } }>(m));
    expect(new Set(corrections.map((c) => c.id)).size).toBe(MISSING);
    expect(corrections.every((c) => c.data.amount === '1')).toBe(true);
    const queued = (await readAll(js, jsm, 'RECON')).filter((m) => m.subject === 'recon.manual.crash').map((m) => json<{ id: string; type: string }>(m));
    expect(new Set(queued.map((q) => q.id)).size).toBe(MISMATCHED + DUPLICATED);

    clickhouse = openClickHouse(testConfig({ dataDir: dir }));
    const rows = async (query: string) => (await clickhouse!.query({ query, format: 'JSONEachRow' })).json<{ k: string; n: string }>();
    const byType = await rows(`SELECT concat(toString(type), '/', toString(status)) AS k, count() AS n FROM tidemark.recon_discrepancies FINAL GROUP BY k ORDER BY k`);
    expect(byType.map((r) => `${r.k} ${r.n}`)).toEqual([`Duplicate/open ${DUPLICATED}`, `Mismatch/open ${MISMATCHED}`, `MissingInB/healed ${MISSING}`]);
    const actions = await rows(`SELECT toString(action) AS k, count() AS n FROM tidemark.recon_actions FINAL GROUP BY k ORDER BY k`);
    expect(actions.map((r) => `${r.k} ${r.n}`)).toEqual([`healed ${MISSING}`, `queued ${MISMATCHED + DUPLICATED}`]);
  }, 240_000);
});
