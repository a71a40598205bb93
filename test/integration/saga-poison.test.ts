import { Kvm } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import type { DlqRecord } from '../../src/nats/dlq.ts';
import { SAGA_BUCKET } from '../../src/saga/subjects.ts';
import { json, readAll, waitFor } from '../harness/streams.ts';
import { sagaConfig, trigger, useSagaFixture, waitForStatus } from '../support/saga.ts';

const config = sagaConfig({ nats: { poisonAfter: 3 } });

const saga = useSagaFixture({ config });

const filedFor = async (triggerId: string): Promise<DlqRecord[]> =>
  (await readAll(saga.conn.js, saga.conn.jsm, 'DLQ'))
    .map((m) => json<DlqRecord>(m))
    .filter((r) => r.subject === 'saga.in.trigger.order' && (JSON.parse(Buffer.from(r.raw, 'base64').toString()) as { id?: string }).id === triggerId);

/** `triggerId`'s input is in the DLQ once, as UNPROCESSABLE for `reason`, and the trigger consumer has nothing left. */
async function expectFiledOnce(triggerId: string, reason: RegExp, what: string): Promise<void> {
  const filed = await waitFor(async () => {
    const found = await filedFor(triggerId);
    return found.length > 0 && found;
  }, 30_000, what);
  expect(filed).toHaveLength(1);
  expect(filed[0]).toMatchObject({ code: 'UNPROCESSABLE' });
  expect(filed[0]!.reason).toMatch(reason);
  await waitFor(async () => {
    const info = await saga.conn.jsm.consumers.info('SAGAS', 'saga-triggers');
    return info.num_pending === 0 && info.num_ack_pending === 0;
  }, 30_000, 'the trigger consumer to drain');
}

describe('a saga input that keeps failing on its own', () => {
  it('on a quiet feed (no other input passes), goes to the DLQ after nats.poisonAfter deliveries because NATS answers', async () => {
    const kv = await new Kvm(saga.conn.js).open(SAGA_BUCKET);
    await kv.put('order.lonely', '{"status":"running","due":null, not json');
    await trigger(saga.conn.js, 'lonely');
    await expectFiledOnce('lonely', /saga-triggers failed it 3 times while its sink answered/, 'the lone failing trigger in the DLQ');
  }, 60_000);

  it('goes to the DLQ after nats.poisonAfter deliveries and is term()ed, while the other sagas run to the end', async () => {
    // a stored record that reads as running but is no JSON: every input for this saga fails to load it
    const kv = await new Kvm(saga.conn.js).open(SAGA_BUCKET);
    await kv.put('order.corrupt', '{"status":"running","due":null, not json');
    await trigger(saga.conn.js, 'corrupt');
    const ids = Array.from({ length: 6 }, (_, i) => `fine-${i}`);
    for (const id of ids) await trigger(saga.conn.js, id);
    for (const id of ids) await waitForStatus(saga.role.store, `order.${id}`, ['completed'], 30_000);

    await expectFiledOnce('corrupt', /saga-triggers failed it 3 times/, 'the failing trigger in the DLQ');
  }, 90_000);
});
