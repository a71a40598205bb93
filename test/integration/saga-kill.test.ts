import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBatchPublisher } from '../../src/nats/batch-publisher.ts';
import type { SagaStore } from '../../src/saga/store.ts';
import { ensureSagaTopology, openSagaStore } from '../../src/saga/topology.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { waitFor } from '../harness/streams.ts';
import { connectTo, mixedScripts, orderSpec, sagaConfig, startServices, trigger, verifyAgainstOracle, type Conn, type Services } from '../support/saga.ts';

/** The definition travels in the config file, as an operator would deploy it. */
const settings = { sagas: { ackWait: '500ms', concurrency: 32, definitions: [orderSpec(30_000)] } };
const config = sagaConfig(settings);
const SAGAS = 150;

/** `tidemark saga run`, built the way src/cli/main.ts builds the program. */
const CHILD = `
const { Command } = await import('commander');
const { register } = await import('./src/cli/commands/saga.ts');
const program = new Command('tidemark').option('-c, --config <file>');
register(program);
await program.parseAsync(process.argv.slice(1), { from: 'user' });
`;

let server: TestNats;
let conn: Conn;
let services: Services;
let store: SagaStore;
let dir: string;
let configFile: string;

function startOrchestratorProcess(): ChildProcess & { stderrText: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD, '--', 'saga', 'run', '--no-clickhouse', '--config', configFile], {
    env: { ...process.env, NATS_URL: server.url, TIDEMARK_DATA_DIR: dir, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return Object.assign(child, { stderrText: () => stderr });
}

const exited = (child: ChildProcess) => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

beforeAll(async () => {
  server = await startTestNats();
  dir = mkdtempSync(join(tmpdir(), 'tidemark-saga-kill-'));
  configFile = join(dir, 'tidemark.yaml');
  writeFileSync(configFile, JSON.stringify(settings));
  conn = await connectTo(server.url, config);
  await ensureSagaTopology(conn.js, conn.jsm, config);
  store = await openSagaStore(conn.js, createBatchPublisher(conn.nc));
  services = await startServices(conn.js, conn.jsm, 30);
});

afterAll(async () => {
  await services?.stop();
  await conn?.nc.close();
  await server?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('saga run killed with SIGKILL mid-flight', () => {
  it('resumes every saga after a restart and ends each exactly once', async () => {
    const scripts = mixedScripts(SAGAS, 11);
    const ids = scripts.map((_, i) => `k-${i}`);
    const half = SAGAS / 2;
    // half triggered before the kill, half after: the kill lands mid-flight however fast the first run is
    await Promise.all(ids.slice(0, half).map((id, i) => trigger(conn.js, id, scripts[i]!)));

    const first = startOrchestratorProcess();
    const ended = async () => (await store.list('order.>')).filter((l) => ['completed', 'compensated', 'parked'].includes(l.record.status)).length;
    await waitFor(async () => (await ended()) >= SAGAS / 4, 60_000, 'a quarter of the sagas to end');
    first.kill('SIGKILL');
    await exited(first);
    const atKill = await ended();
    expect(atKill).toBeLessThan(SAGAS);
    await Promise.all(ids.slice(half).map((id, i) => trigger(conn.js, id, scripts[half + i]!)));

    const second = startOrchestratorProcess();
    try {
      await verifyAgainstOracle(store, conn, ids, scripts, 90_000);
    } finally {
      second.kill('SIGTERM');
      await exited(second);
    }
    expect({ exit: second.exitCode, stderr: second.stderrText() }).toEqual({ exit: 0, stderr: '' });
  }, 240_000);
});
