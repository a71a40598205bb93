import { describe, expect, it } from 'vitest';
import { json, readAll } from '../harness/streams.ts';
import { sagaConfig, trigger, useSagaFixture, verifyAgainstOracle } from '../support/saga.ts';

const MAX_ACTIVE = 3;
const config = sagaConfig({ sagas: { ackWait: '1s', concurrency: 32, maxActive: MAX_ACTIVE } });

const saga = useSagaFixture({ config, role: { timeout: 30_000 } });

describe('admission of new sagas', { timeout: 120_000 }, () => {
  it('starts no more than sagas.maxActive at once, and starts the rest as those end', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `adm-${i}`);
    // the order service answers each command after LATE_MS (inside the step timeout), so the first sagas stay under way a while
    for (const id of ids) await trigger(saga.conn.js, id, { 'do:order': ['slow'] });
    // the slow answers are successes: every saga ends as on the happy path
    await verifyAgainstOracle(saga.role.store, saga.conn, ids, ids.map(() => ({})));
    // judged from what was stored, not from a sample at some moment. A saga is under way from
    // its first command (stored once it was admitted; its SagaStarted time is the trigger's
    // arrival, before admission) until its SagaCompleted, which is stored before its slot is freed
    const firstCommandAt = new Map<string, number>();
    for (const msg of await readAll(saga.conn.js, saga.conn.jsm, 'SAGAS')) {
      if (!msg.subject.startsWith('saga.cmd.')) continue;
      const { sagaId } = json<{ sagaId: string }>(msg);
      if (!firstCommandAt.has(sagaId)) firstCommandAt.set(sagaId, msg.info.timestampNanos / 1_000_000);
    }
    const spans = await Promise.all(ids.map(async (id) => {
      const events = (await saga.role.store.load(`order.${id}`))!.record.events;
      return { start: firstCommandAt.get(`order.${id}`)!, end: events.find((e) => e.type === 'SagaCompleted')!.at };
    }));
    const activeAtStarts = spans.map(({ start }) => spans.filter((s) => s.start <= start && s.end > start).length);
    expect(Math.max(...activeAtStarts)).toBe(MAX_ACTIVE);
  });
});
