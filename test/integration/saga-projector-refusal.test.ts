import { describe, expect, it } from 'vitest';
import type { DlqRecord } from '../../src/nats/dlq.ts';
import { sagaIdOf, triggerSubject } from '../../src/saga/subjects.ts';
import { useTestClickHouse } from '../harness/clickhouse.ts';
import { json, readAll, waitFor } from '../harness/streams.ts';
import { sagaConfig, trigger, useSagaFixture, waitForStatus } from '../support/saga.ts';

const ch = useTestClickHouse();
const saga = useSagaFixture(() => ({ config: sagaConfig({ clickhouse: { database: ch.db } }), role: { clickhouse: ch.client } }));

describe('a saga row ClickHouse refuses', () => {
  it('is filed in the DLQ as REFUSED_BY_SINK while the other sagas and every step are stored, and the projector drains', async () => {
    // valid JSON whose id is a lone UTF-16 surrogate: JavaScript takes it, ClickHouse's JSON input does not
    const loneId = 'lone-\ud800';
    const loneSaga = sagaIdOf('order', loneId);
    await saga.conn.js.publish(triggerSubject('order'), `{"id":"lone-\\ud800","data":{"orderId":"lone","script":{}}}`, { msgID: 'trigger:lone' });
    for (const id of ['fine-a', 'fine-b']) await trigger(saga.conn.js, id);
    for (const id of [loneSaga, 'order.fine-a', 'order.fine-b']) await waitForStatus(saga.role.store, id, ['completed'], 30_000);

    const sagas = async () => (await (await ch.client.query({ query: `SELECT saga_id, status FROM ${ch.db}.sagas FINAL ORDER BY saga_id`, format: 'JSONEachRow' })).json<{ saga_id: string; status: string }>());
    await waitFor(async () => (await sagas()).filter((r) => r.status === 'completed').length === 2, 30_000, 'the fine sagas projected as completed');
    expect(await sagas()).toEqual([
      { saga_id: 'order.fine-a', status: 'completed' },
      { saga_id: 'order.fine-b', status: 'completed' },
    ]);
    // its steps carry no user text: they are stored (waited for: the steps are inserts of their own, after the sagas rows)
    const stepCount = async () => Number((await (await ch.client.query({ query: `SELECT count() AS n FROM ${ch.db}.saga_steps FINAL WHERE saga_id = {id:String}`, query_params: { id: loneSaga }, format: 'JSONEachRow' })).json<{ n: string }>())[0]!.n);
    await waitFor(async () => (await stepCount()) >= 4, 30_000, 'the steps of the refused saga');
    expect(await stepCount()).toBe(4);

    const filed = await waitFor(async () => {
      const found = (await readAll(saga.conn.js, saga.conn.jsm, 'DLQ')).map((m) => json<DlqRecord>(m)).filter((r) => r.subject === 'sink.sagas');
      return found.length > 0 && found;
    }, 30_000, 'the refused saga row in the DLQ');
    expect(filed.every((r) => r.code === 'REFUSED_BY_SINK')).toBe(true);
    expect(filed[0]!.reason).toMatch(/surrogate/);
    expect(JSON.parse(Buffer.from(filed[0]!.raw, 'base64').toString())).toMatchObject({ saga_id: loneSaga, status: expect.any(String) });
    await waitFor(async () => {
      const info = await saga.conn.jsm.consumers.info('KV_tidemark_sagas', 'saga-projector');
      return info.num_pending === 0 && info.num_ack_pending === 0;
    }, 30_000, 'the projector to drain');
    expect(saga.role.projector!.stats.filed).toBeGreaterThan(0);
  }, 90_000);
});
