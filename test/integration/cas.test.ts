import { jetstreamManager, JetStreamApiError } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBatchPublisher, PublishError, type BatchPublisher } from '../../src/nats/batch-publisher.ts';
import { CasConflict, isCasConflict } from '../../src/nats/cas.ts';
import { useConnectedNats } from '../harness/nats-client.ts';

const nats = useConnectedNats();
let kv: KV;
let publisher: BatchPublisher;

beforeAll(async () => {
  kv = await new Kvm(nats.js).create('cas_test');
  publisher = createBatchPublisher(nats.nc);
}, 30_000);

afterAll(() => {
  publisher?.close();
});

const caught = async (work: () => Promise<unknown>): Promise<unknown> => {
  try {
    await work();
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure');
};

describe('a lost compare-and-set, recognised by its JetStream API code', () => {
  it('is recognised from kv.create on a live key, kv.update and kv.delete with a stale revision', async () => {
    const first = await kv.create('k', 'a');
    await kv.update('k', 'b', first);
    const errors = [await caught(() => kv.create('k', 'c')), await caught(() => kv.update('k', 'c', first)), await caught(() => kv.delete('k', { previousSeq: first }))];
    for (const err of errors) {
      expect(err).toBeInstanceOf(JetStreamApiError);
      expect(isCasConflict(err)).toBe(true);
    }
  });

  it('is recognised from a publish with an expected last subject sequence through the batch publisher', async () => {
    const seq = await kv.put('p', 'x');
    await kv.put('p', 'y');
    const err = await caught(() => publisher.publishOne({ subject: '$KV.cas_test.p', data: 'z', headers: { 'Nats-Expected-Last-Subject-Sequence': String(seq) } }));
    expect(err).toBeInstanceOf(PublishError);
    expect((err as PublishError).code).toBe(10071);
    expect(isCasConflict(err)).toBe(true);
  });

  it('is not any other failure, whatever its text says', async () => {
    const jsm = await jetstreamManager(nats.nc);
    const missing = await caught(() => jsm.streams.info('NO_SUCH_STREAM'));
    expect(missing).toBeInstanceOf(JetStreamApiError);
    expect(isCasConflict(missing)).toBe(false);
    expect(isCasConflict(new Error('wrong last sequence: 7'))).toBe(false);
    expect(isCasConflict(new PublishError('s', 'wrong last sequence: 7'))).toBe(false);
    expect(isCasConflict(new CasConflict('saga x changed since revision 3'))).toBe(true);
  });
});
