import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EmbeddedClickHouseServer } from '../../src/clickhouse/http-server/server.ts';
import { FENCE_BUCKET, openArbiter } from '../../src/processors/realtime/fence.ts';
import { Kvm } from '@nats-io/kv';
import type { TestNats } from '../harness/nats.ts';
import { startProcessStack, type ProcessStack } from '../harness/process-stack.ts';
import { exited, spawnTidemark } from '../harness/processes.ts';
import { waitFor } from '../harness/streams.ts';

/**
 * SIGTERM while the realtime gate holds a redelivered message: another instance is
 * registered and live but never commits, so the gate would wait for it up to the
 * liveness (6 × idleTimeout, here 2 minutes) and the consumer's stop waited for that
 * batch. Now the processor exits within its stop grace, leaving that batch unacked.
 */
const settings = {
  nats: { ackWait: '2s' },
  processor: { idleTimeout: '20s' },
  reports: [{ name: 'rtstop', types: ['sale'], groupBy: ['source'], measures: { amount: { fn: 'sum', field: 'amount' } }, windows: [{ size: '10m', slide: '5m' }] }],
};
const LIVENESS_MS = 6 * 20_000;

let stack: ProcessStack;
let server: TestNats;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let clickhouse: EmbeddedClickHouseServer;
let configFile: string;

beforeAll(async () => {
  stack = await startProcessStack(settings, 'tidemark-stop-gate-');
  ({ server, nc, js, jsm, clickhouse, configFile } = stack);
});

afterAll(async () => {
  await stack?.dispose();
});

const consumerInfo = () => jsm.consumers.info('EVENTS', 'processor');

describe('processor stop with a stuck realtime gate', () => {
  it('SIGTERM ends the process well within the liveness the gate waits for; the held message stays unacked', async () => {
    // a live instance that never commits again: a redelivered message waits for it
    const arbiter = await openArbiter(js, 1);
    await arbiter.register('silent-instance', 0, Date.now());
    nc.publish('ingest.stop-gate.sale', JSON.stringify({ id: 'stop-gate-1', occurredAt: Date.now() - 60_000, data: { amount: '12.34' } }));
    await nc.flush();
    await waitFor(async () => (await jsm.streams.info('EVENTS')).state.messages >= 1, 60_000, 'the event on EVENTS');
    // its first delivery goes to the test, which never acks it: the processor gets it redelivered
    const taken = await (await js.consumers.get('EVENTS', 'processor')).next({ expires: 30_000 });
    expect(taken?.info.deliveryCount).toBe(1);

    const processor = spawnTidemark(['processor', '--config', configFile], { NATS_URL: server.url, CLICKHOUSE_URL: clickhouse.url });
    try {
      const kv = await new Kvm(js).open(FENCE_BUCKET);
      await waitFor(async () => {
        for await (const key of await kv.keys()) if (key !== 'silent-instance' && (await kv.get(key))?.operation === 'PUT') return true;
        return false;
      }, 120_000, 'the processor to register');
      await waitFor(async () => (await consumerInfo()).delivered.consumer_seq >= 2, 60_000, 'the message redelivered to the processor');
      // still in doubt: the silent instance is live, so the gate holds it
      expect((await consumerInfo()).ack_floor.stream_seq).toBe(0);

      const started = performance.now();
      processor.kill('SIGTERM');
      await Promise.race([exited(processor), new Promise((resolve) => setTimeout(resolve, LIVENESS_MS / 2))]);
      const tookMs = performance.now() - started;
      expect(processor.exitCode, `still running ${Math.round(tookMs)} ms after SIGTERM`).toBe(0);
      expect(tookMs).toBeLessThan(LIVENESS_MS / 2);
      expect((await consumerInfo()).ack_floor.stream_seq).toBe(0);
    } finally {
      if (processor.exitCode === null && processor.signalCode === null) {
        processor.kill('SIGKILL');
        await exited(processor);
      }
    }
  }, 300_000);
});
