import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DlqRecord } from '../../src/nats/dlq.ts';
import { startSagaRole, type SagaRole } from '../../src/saga/role.ts';
import { sagaIdOf, triggerSubject } from '../../src/saga/subjects.ts';
import { closeTestClickHouse, openTestClickHouse, type TestClickHouse } from '../harness/clickhouse.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { json, readAll, waitFor } from '../harness/streams.ts';
import { connectTo, logger, orderSaga, sagaConfig, startServices, trigger, waitForStatus, type Conn, type Services } from '../support/saga.ts';

let server: TestNats;
let ch: TestClickHouse;
let conn: Conn;
let role: SagaRole;
let services: Services;

beforeAll(async () => {
  server = await startTestNats();
  ch = await openTestClickHouse();
  const config = sagaConfig({ clickhouse: { database: ch.db } });
  conn = await connectTo(server.url, config);
  role = await startSagaRole({ config, nc: conn.nc, js: conn.js, jsm: conn.jsm, logger, definitions: [orderSaga()], clickhouse: ch.client });
  services = await startServices(conn.js, conn.jsm);
}, 60_000);

afterAll(async () => {
  await services?.stop();
  await role?.stop();
  await conn?.nc.close();
  await server?.dispose();
  await ch?.dispose();
  await closeTestClickHouse();
});

describe('a saga row ClickHouse refuses', () => {
  it('is filed in the DLQ as REFUSED_BY_SINK while the other sagas and every step are stored, and the projector drains', async () => {
    // valid JSON whose id is a lone UTF-16 surrogate: JavaScript takes it, ClickHouse's JSON input does not
    const loneId = 'lone-\ud800';
    const loneSaga = sagaIdOf('order', loneId);
    await conn.js.publish(triggerSubject('order'), `{"id":"lone-\\ud800","data":{"orderId":"lone","script":{}}}`, { msgID: 'trigger:lone' });
    for (const id of ['fine-a', 'fine-b']) await trigger(conn.js, id);
    for (const id of [loneSaga, 'order.fine-a', 'order.fine-b']) await waitForStatus(role.store, id, ['completed'], 30_000);

    const sagas = async () => (await (await ch.client.query({ query: `SELECT saga_id, status FROM ${ch.db}.sagas FINAL ORDER BY saga_id`, format: 'JSONEachRow' })).json<{ saga_id: string; status: string }>());
    await waitFor(async () => (await sagas()).filter((r) => r.status === 'completed').length === 2, 30_000, 'the fine sagas projected as completed');
    expect(await sagas()).toEqual([
      { saga_id: 'order.fine-a', status: 'completed' },
      { saga_id: 'order.fine-b', status: 'completed' },
    ]);
    // its steps carry no user text: they are stored
    const steps = await (await ch.client.query({ query: `SELECT count() AS n FROM ${ch.db}.saga_steps FINAL WHERE saga_id = {id:String}`, query_params: { id: loneSaga }, format: 'JSONEachRow' })).json<{ n: string }>();
    expect(Number(steps[0]!.n)).toBe(4);

    const filed = await waitFor(async () => {
      const found = (await readAll(conn.js, conn.jsm, 'DLQ')).map((m) => json<DlqRecord>(m)).filter((r) => r.subject === 'sink.sagas');
      return found.length > 0 && found;
    }, 30_000, 'the refused saga row in the DLQ');
    expect(filed.every((r) => r.code === 'REFUSED_BY_SINK')).toBe(true);
    expect(filed[0]!.reason).toMatch(/surrogate/);
    expect(JSON.parse(Buffer.from(filed[0]!.raw, 'base64').toString())).toMatchObject({ saga_id: loneSaga, status: expect.any(String) });
    await waitFor(async () => {
      const info = await conn.jsm.consumers.info('KV_tidemark_sagas', 'saga-projector');
      return info.num_pending === 0 && info.num_ack_pending === 0;
    }, 30_000, 'the projector to drain');
    expect(role.projector!.stats.filed).toBeGreaterThan(0);
  }, 90_000);
});
