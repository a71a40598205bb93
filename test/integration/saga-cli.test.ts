import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { register } from '../../src/cli/commands/saga.ts';
import { isTidemarkError } from '../../src/core/errors.ts';
import { startProjector } from '../../src/saga/projector.ts';
import { SAGA_CONSUMERS } from '../../src/saga/subjects.ts';
import { ensureSagaTopology } from '../../src/saga/topology.ts';
import { useTestClickHouse } from '../harness/clickhouse.ts';
import { waitFor } from '../harness/streams.ts';
import { logger, sagaConfig, trigger, useSagaFixture, waitForStatus } from '../support/saga.ts';

const ch = useTestClickHouse();
let config: ReturnType<typeof sagaConfig>;
const saga = useSagaFixture(() => {
  config = sagaConfig({ clickhouse: { database: ch.db } });
  return { config, role: { clickhouse: ch.client } };
});
let dir: string;
let configFile: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tidemark-saga-cli-'));
  configFile = join(dir, 'tidemark.yaml');
  writeFileSync(configFile, JSON.stringify({ nats: { url: saga.server.url } }));
  const { conn, role } = saga;
  await trigger(conn.js, 'cli-ok');
  await trigger(conn.js, 'cli-comp', { 'do:payment': ['fail'] });
  await trigger(conn.js, 'cli-park', { 'do:shipping': ['fail'], 'undo:payment': ['fail', 'fail', 'fail', 'ok'] });
  await trigger(conn.js, 'cli-abort', { 'do:inventory': ['fail'], 'undo:order': ['fail', 'fail', 'fail'] });
  await waitForStatus(role.store, 'order.cli-ok', ['completed']);
  await waitForStatus(role.store, 'order.cli-comp', ['compensated']);
  await waitForStatus(role.store, 'order.cli-park', ['parked']);
  await waitForStatus(role.store, 'order.cli-abort', ['parked']);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `tidemark saga …` in process and returns what it printed. */
async function tidemark(...args: string[]): Promise<string> {
  const program = new Command('tidemark').option('-c, --config <file>').exitOverride();
  register(program);
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(['--config', configFile, 'saga', ...args], { from: 'user' });
  } finally {
    spy.mockRestore();
  }
  return out;
}

describe('tidemark saga list|show|retry|abort', () => {
  it('lists sagas with status and current step, and the parked ones on their own', async () => {
    const lines = (await tidemark('list')).trim().split('\n');
    expect(lines[0]).toMatch(/^SAGA\s+STATUS\s+STEP\s+STARTED\s+DURATION$/);
    const rows = Object.fromEntries(lines.slice(1).map((l) => { const [id, status, step] = l.split(/\s+/); return [id, `${status} ${step}`]; }));
    expect(rows).toEqual({ 'order.cli-ok': 'completed -', 'order.cli-comp': 'compensated -', 'order.cli-park': 'parked payment', 'order.cli-abort': 'parked order' });
    const parked = (await tidemark('list', '--status', 'parked', '--json')).trim().split('\n').map((l) => JSON.parse(l) as { sagaId: string });
    expect(parked.map((p) => p.sagaId).sort()).toEqual(['order.cli-abort', 'order.cli-park']);
  });

  it('shows one saga: status, failure and its timeline with durations', async () => {
    const text = await tidemark('show', 'order.cli-comp');
    expect(text).toMatch(/^saga {6}order\.cli-comp \(order\)\nstatus {4}compensated\ntrigger {3}cli-comp\nstarted {3}\S+ {2}took \d+(ms|(\.\d+)?s)\nfailure {3}payment: PaymentDeclined, compensation started \+\d+ms\n/);
    const timeline = text.split('\n').filter((l) => /^\+/.test(l)).map((l) => l.split(/\s+/).slice(1, 6).join(' '));
    expect(timeline).toEqual([
      'order do #1 succeeded OrderCreated', 'inventory do #1 succeeded InventoryReserved', 'payment do #1 failed PaymentDeclined',
      'inventory undo #1 succeeded InventoryReleased', 'order undo #1 succeeded OrderCancelled',
    ]);
    await expect(tidemark('show', 'order.nope')).rejects.toSatisfy((err: unknown) => isTidemarkError(err, 'SAGA_NOT_FOUND'));
  });

  it('retry resumes a parked saga, abort closes one, and neither touches a saga that is not parked', async () => {
    expect(await tidemark('show', 'order.cli-park')).toMatch(/status {4}parked {2}→ tidemark saga retry order\.cli-park/);
    expect(await tidemark('retry', 'order.cli-park')).toMatch(/^order\.cli-park: retry applied, now (compensating|compensated)\n$/);
    await waitForStatus(saga.role.store, 'order.cli-park', ['compensated']);
    expect(await tidemark('abort', 'order.cli-abort', '--reason', 'cancelled by hand in the ERP')).toBe('order.cli-abort: abort applied, now aborted\n');
    const log = (await saga.role.store.load('order.cli-abort'))!.record.events.at(-1);
    expect(log).toMatchObject({ type: 'SagaAborted', reason: 'cancelled by hand in the ERP' });
    await expect(tidemark('retry', 'order.cli-ok')).rejects.toSatisfy((err: unknown) => isTidemarkError(err, 'SAGA_NOT_PARKED'));
  });
});

type SagaRowOut = { saga_id: string; status: string; failed_step: string; failure: string; parks: number };

describe('ClickHouse saga tables', () => {
  const sagas = async () =>
    (await ch.client.query({ query: `SELECT saga_id, status, failed_step, failure, parks FROM ${ch.db}.sagas FINAL ORDER BY saga_id`, format: 'JSONEachRow' })).json<SagaRowOut>();
  const steps = async () =>
    (await ch.client.query({ query: `SELECT concat(saga_id, ' ', step, ' ', toString(kind), ' #', toString(attempt), ' ', toString(outcome)) AS s FROM ${ch.db}.saga_steps FINAL WHERE saga_id = 'order.cli-park' ORDER BY seq`, format: 'JSONEachRow' })).json<{ s: string }>();

  it('holds one row per saga and per command attempt, at the latest version', async () => {
    const rows = await waitFor(async () => {
      const all = await sagas();
      return all.length === 4 && all.every((r) => ['completed', 'compensated', 'aborted'].includes(r.status)) && all;
    }, 60_000, 'the projector to catch up');
    expect(rows).toEqual([
      { saga_id: 'order.cli-abort', status: 'aborted', failed_step: 'inventory', failure: 'OutOfStock', parks: 1 },
      { saga_id: 'order.cli-comp', status: 'compensated', failed_step: 'payment', failure: 'PaymentDeclined', parks: 0 },
      { saga_id: 'order.cli-ok', status: 'completed', failed_step: '', failure: '', parks: 0 },
      { saga_id: 'order.cli-park', status: 'compensated', failed_step: 'shipping', failure: 'ShippingRejected', parks: 1 },
    ]);
    // the sagas row and the steps rows are separate inserts: wait for the saga's last step too
    const parkSteps = await waitFor(async () => {
      const all = await steps();
      return all.some((r) => r.s.endsWith('order undo #1 succeeded')) && all;
    }, 60_000, 'the projector to write the last step of order.cli-park');
    expect(parkSteps.map((r) => r.s.replace('order.cli-park ', ''))).toEqual([
      'order do #1 succeeded', 'inventory do #1 succeeded', 'payment do #1 succeeded', 'shipping do #1 failed',
      'payment undo #1 failed', 'payment undo #2 failed', 'payment undo #3 failed', 'payment undo #4 succeeded',
      'inventory undo #1 succeeded', 'order undo #1 succeeded',
    ]);
  });

  it('stays the same when the whole saga log is projected again', async () => {
    const before = { sagas: await sagas(), steps: await steps() };
    await saga.role.projector!.stop();
    await saga.conn.jsm.consumers.delete(SAGA_CONSUMERS.projector.stream, SAGA_CONSUMERS.projector.durable);
    await ensureSagaTopology(saga.conn.js, saga.conn.jsm, config);
    const again = await startProjector({ js: saga.conn.js, clickhouse: ch.client, db: ch.db, logger });
    try {
      // every saga's newest revision written again (background merges may already have folded the copies)
      await waitFor(() => again.stats.revisions >= 4 && again.stats.inserts >= 1, 60_000, 'the log to be projected again');
      expect({ sagas: await sagas(), steps: await steps() }).toEqual(before);
    } finally {
      await again.stop();
    }
  });
});
