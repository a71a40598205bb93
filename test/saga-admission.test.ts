import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SagaRole } from '../src/saga/role.ts';
import { startTestNats, type TestNats } from './harness/nats.ts';
import { connectTo, sagaConfig, startRole, startServices, trigger, verifyAgainstOracle, type Conn, type Services } from './saga-support.ts';

const MAX_ACTIVE = 3;
const config = sagaConfig({ sagas: { ackWait: '1s', concurrency: 32, maxActive: MAX_ACTIVE } });
let server: TestNats;
let conn: Conn;
let role: SagaRole;
let services: Services;

beforeAll(async () => {
  server = await startTestNats();
  conn = await connectTo(server.url, config);
  role = await startRole(conn, config, { timeout: 5_000 });
  services = await startServices(conn.js, conn.jsm);
});

afterAll(async () => {
  await services?.stop();
  await role?.stop();
  await conn?.nc.close();
  await server?.dispose();
});

describe('admission of new sagas', () => {
  it('starts no more than sagas.maxActive at once, and starts the rest as those end', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `adm-${i}`);
    // the order service answers each command after LATE_MS, so the first sagas stay under way a while
    for (const id of ids) await trigger(conn.js, id, { 'do:order': ['late'] });
    await new Promise((r) => setTimeout(r, 400));
    const started = (await Promise.all(ids.map((id) => role.store.load(`order.${id}`)))).filter((l) => l !== null);
    expect(started).toHaveLength(MAX_ACTIVE);
    expect(started.every((l) => l.record.status === 'running')).toBe(true);
    // the late answers are successes: every saga ends as on the happy path
    await verifyAgainstOracle(role.store, conn, ids, ids.map(() => ({})));
  });
});
