import { JetStreamApiError, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { readiness } from '../../src/cli/roles.ts';
import type { NatsRuntime } from '../../src/cli/runtime.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createRegistry } from '../../src/core/metrics.ts';
import { startHttpGateway } from '../../src/ingest/http/server.ts';
import { createBatchPublisher, PublishError } from '../../src/nats/batch-publisher.ts';
import { connectNats, serverList } from '../../src/nats/connect.ts';
import { isTransient, publishRetrying, retryTransient } from '../../src/nats/retry.ts';
import { useTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { useTestNats } from '../harness/nats-client.ts';
import { waitFor } from '../harness/streams.ts';

const server = useTestNats();
const ch = useTestClickHouse();

const apiError = (status: number, code: number, description: string) => new JetStreamApiError({ code: status, err_code: code, description });

describe('riding through a leader election', () => {
  it('retries only what means "no leader answered", never what the server refused', () => {
    expect(isTransient(new TimeoutError())).toBe(true);
    expect(isTransient(new RequestError('no responders', { cause: new NoRespondersError('$JS.API.STREAM.INFO.EVENTS') }))).toBe(true);
    expect(isTransient(apiError(503, 10008, 'JetStream system temporarily unavailable'))).toBe(true);
    expect(isTransient(new Error('503 no responders'))).toBe(true);
    expect(isTransient(new Error('jetstream is not enabled', { cause: new RequestError('no responders', { cause: new NoRespondersError('saga.in.trigger.order') }) }))).toBe(true);
    expect(isTransient(apiError(400, 10071, 'wrong last sequence: 7'))).toBe(false);
    expect(isTransient(apiError(404, 10059, 'stream not found'))).toBe(false);
    expect(isTransient(new Error('wrong last sequence: 7'))).toBe(false);
    // the batch publisher names the subject first: a stream without a leader is still a wait, a lost race is not
    expect(isTransient(new PublishError('$KV.tidemark_sagas.order.w-0', '503 no stream answered'))).toBe(true);
    expect(isTransient(new PublishError('$KV.tidemark_sagas.order.w-0', 'wrong last sequence: 7', 10071))).toBe(false);
  });

  it('tries again with backoff until the call succeeds, and gives a refusal back at once', async () => {
    let calls = 0;
    expect(await retryTransient(async () => (++calls < 3 ? Promise.reject(new TimeoutError()) : 'done'))).toBe('done');
    expect(calls).toBe(3);
    calls = 0;
    await expect(retryTransient(async () => (++calls, Promise.reject(apiError(400, 10071, 'wrong last sequence: 7'))))).rejects.toThrow('wrong last sequence');
    expect(calls).toBe(1);
    calls = 0;
    await expect(retryTransient(async () => (++calls, Promise.reject(new TimeoutError())), { budgetMs: 300 })).rejects.toThrow('timeout');
    expect(calls).toBeGreaterThan(1);
  });

  it('publishes again what no stream stored until one does, but only items with a message id', async () => {
    const nc = await connectNats(testConfig(), server.url);
    const jsm = await jetstreamManager(nc);
    const publisher = createBatchPublisher(nc);
    try {
      // nothing captures retry.> yet: every PubAck is a 503 until the stream appears
      const creating = new Promise((r) => setTimeout(r, 400)).then(() => jsm.streams.add({ name: 'RETRY', subjects: ['retry.>'] }));
      const outcomes = await publishRetrying(publisher, [
        { subject: 'retry.a', data: '1', msgId: 'a-1' },
        { subject: 'retry.a', data: '2' },
        { subject: 'retry.b', data: '3', msgId: 'b-1' },
      ], { budgetMs: 10_000 });
      await creating;
      expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
      expect((await jsm.streams.info('RETRY')).state.messages).toBe(2);
    } finally {
      publisher.close();
      await nc.close();
    }
  });

  it('reports an item whose PubAck never came as failed, not as a hole the caller skips', async () => {
    const nc = await connectNats(testConfig(), server.url);
    const publisher = createBatchPublisher(nc);
    // a subscriber that never answers: the request reaches someone, no PubAck comes back
    const silent = nc.subscribe('silent.>', { callback: () => undefined });
    try {
      const outcomes = await publisher.publish([{ subject: 'silent.a', data: '1', msgId: 's-1' }], 300);
      expect(outcomes).toHaveLength(1);
      expect(Object.keys(outcomes)).toEqual(['0']);
      expect(outcomes[0]).toEqual({ ok: false, error: 'no PubAck before the timeout' });
    } finally {
      silent.unsubscribe();
      publisher.close();
      await nc.close();
    }
  });

  it('reads NATS_URL as a comma-separated server list, and /readyz says not ready while no server answers, then ready again', async () => {
    expect(serverList('nats://a:4222, nats://b:4222,,nats://c:4222')).toEqual(['nats://a:4222', 'nats://b:4222', 'nats://c:4222']);
    const config = testConfig({ http: { port: 0 } });
    const nc = await connectNats(config, `${server.url},nats://127.0.0.1:1`);
    const runtime = { nc, js: jetstream(nc) } as unknown as NatsRuntime;
    const ready = readiness(runtime, ch.client);
    const http = await startHttpGateway({ config, js: jetstream(nc), nc, logger: createLogger('test'), registry: createRegistry(), ready });
    try {
      expect(await ready()).toEqual({ ready: true });
      await server.stop();
      await waitFor(async () => (await ready()).ready === false, 60_000, 'not ready');
      expect((await ready()).reason).toMatch(/no NATS server answers/);
      expect((await fetch(`${http.url}/readyz`)).status).toBe(503);
      await server.restart();
      await waitFor(async () => (await ready()).ready, 60_000, 'ready again after the reconnect');
      expect((await fetch(`${http.url}/readyz`)).status).toBe(200);
      expect(nc.isClosed()).toBe(false);
    } finally {
      await http.close();
      await nc.close();
    }
  }, 60_000);
});
