import { spawn, type ChildProcess } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { createBatchPublisher } from '../../src/nats/batch-publisher.ts';
import type { SagaStore } from '../../src/saga/store.ts';
import { ensureSagaTopology, openSagaStore } from '../../src/saga/topology.ts';
import { useConfigDir } from '../harness/config-dir.ts';
import { exited } from '../harness/processes.ts';
import { waitFor } from '../harness/streams.ts';
import { mixedScripts, orderSpec, sagaConfig, trigger, useSagaFixture, verifyAgainstOracle } from '../support/saga.ts';

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

const saga = useSagaFixture({ config, role: false, serviceLatencyMs: 30, prepare: (conn) => ensureSagaTopology(conn.js, conn.jsm, config) });
const files = useConfigDir(settings, 'tidemark-saga-kill-');
let store: SagaStore;

function startOrchestratorProcess(): ChildProcess & { stderrText: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD, '--', 'saga', 'run', '--no-clickhouse', '--config', files.configFile], {
    env: { ...process.env, NATS_URL: saga.server.url, TIDEMARK_DATA_DIR: files.dir, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return Object.assign(child, { stderrText: () => stderr });
}

beforeAll(async () => {
  store = await openSagaStore(saga.conn.js, createBatchPublisher(saga.conn.nc));
});

describe('saga run killed with SIGKILL mid-flight', () => {
  it('resumes every saga after a restart and ends each exactly once', async () => {
    const scripts = mixedScripts(SAGAS, 11);
    const ids = scripts.map((_, i) => `k-${i}`);
    const half = SAGAS / 2;
    // half triggered before the kill, half after: the kill lands mid-flight however fast the first run is
    await Promise.all(ids.slice(0, half).map((id, i) => trigger(saga.conn.js, id, scripts[i]!)));

    const first = startOrchestratorProcess();
    const ended = async () => (await store.list('order.>')).filter((l) => ['completed', 'compensated', 'parked'].includes(l.record.status)).length;
    await waitFor(async () => (await ended()) >= SAGAS / 4, 60_000, 'a quarter of the sagas to end');
    first.kill('SIGKILL');
    await exited(first);
    const atKill = await ended();
    expect(atKill).toBeLessThan(SAGAS);
    await Promise.all(ids.slice(half).map((id, i) => trigger(saga.conn.js, id, scripts[half + i]!)));

    const second = startOrchestratorProcess();
    try {
      await verifyAgainstOracle(store, saga.conn, ids, scripts, 90_000);
    } finally {
      second.kill('SIGTERM');
      await exited(second);
    }
    expect({ exit: second.exitCode, stderr: second.stderrText() }).toEqual({ exit: 0, stderr: '' });
  }, 240_000);
});
