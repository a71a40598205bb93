import { Kvm } from '@nats-io/kv';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shiftedClock } from '../support/clock.ts';
import type { DlqRecord } from '../../src/nats/dlq.ts';
import { durableName } from '../../src/reconcile/feeds.ts';
import { stateKey } from '../../src/reconcile/logic/keys.ts';
import { stateBucket } from '../../src/reconcile/state-store.ts';
import { startReconcileStreaming, type ReconcileStreaming } from '../../src/reconcile/streaming.ts';
import { closeTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { startTestStack, type TestStack } from '../harness/stack.ts';
import { json, readAll, waitFor } from '../harness/streams.ts';

let stack: TestStack;
let { ch, nc, js, jsm, config } = {} as TestStack;
let role: ReconcileStreaming | undefined;
const clock = shiftedClock();
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });

beforeAll(async () => {
  stack = await startTestStack((database) => testConfig({
    clickhouse: { database },
    nats: { ackWait: '5s', poisonAfter: 3 },
    reconciliations: [{
      name: 'pz',
      a: { subject: 'recon.pz.bank' },
      b: { subject: 'recon.pz.ledger' },
      key: ['merchant', 'txn'],
      fields: { amount: { compare: 'absolute', tolerance: '0' } },
      lag: '1h',
      stream: { batchSize: 50, tick: '50ms' },
    }],
  }));
  ({ ch, nc, js, jsm, config } = stack);
}, 60_000);

afterAll(async () => {
  await role?.stop();
  await stack?.dispose();
  await closeTestClickHouse();
});

const drained = async (durable: string): Promise<boolean> => {
  const info = await jsm.consumers.info('RECON', durable);
  return info.num_pending === 0 && info.num_ack_pending === 0;
};

describe('streaming reconciliation and a record that fails on its own', () => {
  it('files a feed message whose processing keeps failing (its match state is corrupt) in the DLQ after nats.poisonAfter deliveries, term()s it, and handles the others', async () => {
    role = await startReconcileStreaming({ config, js, jsm, clickhouse: ch.client, logger, clock, names: ['pz'] });
    // a state entry no reader can parse: every delivery of the record with this key fails, whatever the others do
    const kv = await new Kvm(js).open(stateBucket('pz'));
    await kv.put(stateKey(['m1', 'bad']), 'not json {');
    const at = clock.now() - 1_000;
    const bank = (txn: string) => nc.publish('recon.pz.bank', JSON.stringify({ merchant: 'm1', txn, amount: '1.00', occurredAt: at }));
    for (let i = 0; i < 5; i++) bank(`ok${i}`);
    bank('bad');
    for (let i = 5; i < 10; i++) bank(`ok${i}`);
    await nc.flush();

    await waitFor(() => drained(durableName('pz', 'A', 'match')), 60_000, 'the match cursor to drain');
    const badSeq = (await readAll(js, jsm, 'RECON')).find((m) => m.subject === 'recon.pz.bank' && m.string().includes('"bad"'))!.seq;
    const filed = await waitFor(async () => (await readAll(js, jsm, 'DLQ')).map((m) => json<DlqRecord>(m)).filter((r) => 'stream' in r.origin && r.origin.stream === 'RECON' && r.origin.seq === badSeq), 60_000, 'the DLQ record');
    expect(filed).toHaveLength(1);
    expect(filed[0]).toMatchObject({ code: 'UNPROCESSABLE', subject: 'recon.pz.bank' });
    expect(filed[0]!.reason).toContain('RECON/recon_pz_a_match failed it 3 times');
    for (let i = 0; i < 10; i++) expect((await kv.get(stateKey(['m1', `ok${i}`])))?.operation).toBe('PUT');

    // past the window the expiry cursor meets the same record: it ends there too (one DLQ record per raw message), and the others expire
    clock.shift(2 * 3_600_000);
    await waitFor(() => drained(durableName('pz', 'A', 'expiry')), 60_000, 'the expiry cursor to drain');
    const records = (await readAll(js, jsm, 'DLQ')).map((m) => json<DlqRecord>(m)).filter((r) => 'stream' in r.origin && r.origin.stream === 'RECON');
    expect(records.map((r) => (r.origin as { seq: number }).seq)).toEqual([badSeq]);
  }, 120_000);
});
