import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DlqRecord } from '../../src/nats/dlq.ts';
import { startNatsGateway, type NatsGateway } from '../../src/ingest/nats-gateway.ts';
import { freePort } from '../../src/nats/embedded-server.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { testConfig } from '../harness/config.ts';
import { json, readAll, unpack, waitFor } from '../harness/streams.ts';

/**
 * The net under validation: a valid event whose EVENTS message the NATS client will
 * not send. A server with max_payload 64 KiB stores a raw event just under it, but the
 * stamped event (receivedAt, seq, its id as a header) is just over: the client throws
 * building it. The gateway must file that input and go on, not fail its batch forever.
 */
const MAX_PAYLOAD = 64 * 1024;

let dir: string;
let server: ChildProcess;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let gateway: NatsGateway;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tidemark-refusal-'));
  const port = await freePort();
  writeFileSync(join(dir, 'nats.conf'), `port: ${port}\nhost: 127.0.0.1\nmax_payload: ${MAX_PAYLOAD}\njetstream { store_dir: "${join(dir, 'js')}" }\n`);
  server = spawn('nats-server', ['-c', join(dir, 'nats.conf')], { stdio: 'ignore' });
  nc = await waitFor(() => connect({ servers: `nats://127.0.0.1:${port}` }), 60_000, 'nats-server to accept connections');
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  const config = testConfig({ ingest: { maxEventBytes: 2 * MAX_PAYLOAD } });
  await ensureTopology(jsm, config);
  gateway = await startNatsGateway({ js, nc, config, logger: pino({ level: 'silent' }) });
});

afterAll(async () => {
  await gateway?.stop();
  await nc?.close();
  server?.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

describe('an event NATS will not carry', () => {
  it('is filed in the DLQ as UNPUBLISHABLE, and the events after it still arrive', async () => {
    expect(nc.info?.max_payload).toBe(MAX_PAYLOAD);
    const occurredAt = Date.now() - 1_000;
    const frame = JSON.stringify({ id: 'too-big', occurredAt, data: { pad: '' } });
    const big = JSON.stringify({ id: 'too-big', occurredAt, data: { pad: 'p'.repeat(MAX_PAYLOAD - frame.length - 16) } });
    nc.publish('ingest.big.sale', big);
    for (let i = 0; i < 5; i++) nc.publish('ingest.big.sale', JSON.stringify({ id: `after-${i}`, occurredAt }));
    await nc.flush();
    await waitFor(async () => {
      const [stream, consumer] = await Promise.all([jsm.streams.info('INGEST'), jsm.consumers.info('INGEST', 'gateway')]);
      return stream.state.messages === 6 && consumer.ack_floor.stream_seq === stream.state.last_seq;
    }, 60_000, 'the gateway to ack every raw message');
    const dlq = (await readAll(js, jsm, 'DLQ')).map((m) => json<DlqRecord>(m));
    expect(dlq).toHaveLength(1);
    expect(dlq[0]).toMatchObject({ code: 'UNPUBLISHABLE', rawBytes: big.length, reason: expect.stringContaining('max_payload') });
    const events = unpack(await readAll(js, jsm, 'EVENTS')).map((e) => e.event.id);
    expect(events).toEqual([0, 1, 2, 3, 4].map((i) => `after-${i}`));
    expect(gateway.stats).toMatchObject({ accepted: 5, rejected: 1 });
  });
});
