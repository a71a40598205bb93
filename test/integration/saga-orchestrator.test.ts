import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { attemptRows, summarize } from '../../src/saga/logic/timeline.ts';
import { replySubject } from '../../src/saga/subjects.ts';
import { json, readAll, waitFor } from '../harness/streams.ts';
import { commandsOf, sagaConfig, trigger, useSagaFixture, waitForStatus } from '../support/saga.ts';

const registry = new Registry();
const config = sagaConfig();

const saga = useSagaFixture({ config, role: { registry } });

const ALL_DO = ['do:order#1', 'do:inventory#1', 'do:payment#1', 'do:shipping#1'];

describe('saga orchestrator against nats-server', () => {
  it('runs the happy path: every step once, in order, then completed', async () => {
    await trigger(saga.conn.js, 'happy');
    const events = await waitForStatus(saga.role.store, 'order.happy', ['completed']);
    expect(commandsOf(saga.services, 'order.happy')).toEqual(ALL_DO);
    expect(attemptRows(events).map((r) => `${r.step}:${r.outcome}:${r.eventType}`)).toEqual([
      'order:succeeded:OrderCreated', 'inventory:succeeded:InventoryReserved', 'payment:succeeded:PaymentCharged', 'shipping:succeeded:Shipped',
    ]);
    const shipping = saga.services.received.find((r) => r.sagaId === 'order.happy' && r.step === 'shipping')!;
    expect(shipping).toMatchObject({ commandId: 'order.happy:shipping:do:1', idempotencyKey: 'order.happy:shipping:do', payload: { orderId: 'happy', previous: { by: 'payment', attempt: 1 } } });
  });

  it('compensates the finished steps in reverse order when any step fails', async () => {
    const failAt = ['order', 'inventory', 'payment', 'shipping'] as const;
    await Promise.all(failAt.map((step) => trigger(saga.conn.js, `fail-${step}`, { [`do:${step}`]: ['fail'] })));
    const outcomes = [];
    for (const step of failAt) {
      const events = await waitForStatus(saga.role.store, `order.fail-${step}`, ['compensated']);
      outcomes.push(`${step}: ${commandsOf(saga.services, `order.fail-${step}`).join(' ')} | ${summarize(events).failure}`);
    }
    expect(outcomes).toEqual([
      'order: do:order#1 | OrderRejected',
      'inventory: do:order#1 do:inventory#1 undo:order#1 | OutOfStock',
      'payment: do:order#1 do:inventory#1 do:payment#1 undo:inventory#1 undo:order#1 | PaymentDeclined',
      'shipping: do:order#1 do:inventory#1 do:payment#1 do:shipping#1 undo:payment#1 undo:inventory#1 undo:order#1 | ShippingRejected',
    ]);
    const refund = saga.services.received.find((r) => r.sagaId === 'order.fail-shipping' && r.kind === 'undo' && r.step === 'payment')!;
    expect(refund.payload).toMatchObject({ orderId: 'fail-shipping', reason: 'ShippingRejected' });
  });

  it('retries a retryable failure with backoff and compensates at once on a non-retryable one', async () => {
    await trigger(saga.conn.js, 'flaky', { 'do:payment': ['transient', 'transient', 'ok'] });
    await trigger(saga.conn.js, 'flaky-out', { 'do:payment': ['transient', 'transient', 'transient'] });
    await trigger(saga.conn.js, 'declined', { 'do:payment': ['transient', 'fail'] });
    await waitForStatus(saga.role.store, 'order.flaky', ['completed']);
    await waitForStatus(saga.role.store, 'order.flaky-out', ['compensated']);
    const declined = await waitForStatus(saga.role.store, 'order.declined', ['compensated']);
    expect(commandsOf(saga.services, 'order.flaky')).toEqual(['do:order#1', 'do:inventory#1', 'do:payment#1', 'do:payment#2', 'do:payment#3', 'do:shipping#1']);
    expect(commandsOf(saga.services, 'order.flaky-out')).toEqual(['do:order#1', 'do:inventory#1', 'do:payment#1', 'do:payment#2', 'do:payment#3', 'undo:inventory#1', 'undo:order#1']);
    expect(commandsOf(saga.services, 'order.declined')).toEqual(['do:order#1', 'do:inventory#1', 'do:payment#1', 'do:payment#2', 'undo:inventory#1', 'undo:order#1']);
    const retries = declined.filter((e) => e.type === 'RetryScheduled').map((e) => (e.type === 'RetryScheduled' ? e.retryAt - e.at : 0));
    expect(retries).toEqual([30]);
  });

  it('times a silent step out, retries it, and on the last timeout also undoes the uncertain step', async () => {
    await trigger(saga.conn.js, 'slow-pay', { 'do:payment': ['silent', 'ok'] });
    await trigger(saga.conn.js, 'lost-ship', { 'do:shipping': ['silent', 'silent'] });
    const slow = await waitForStatus(saga.role.store, 'order.slow-pay', ['completed']);
    const lost = await waitForStatus(saga.role.store, 'order.lost-ship', ['compensated']);
    expect(attemptRows(slow).filter((r) => r.step === 'payment').map((r) => r.outcome)).toEqual(['timed_out', 'succeeded']);
    expect(commandsOf(saga.services, 'order.lost-ship')).toEqual([...ALL_DO, 'do:shipping#2', 'undo:shipping#1', 'undo:payment#1', 'undo:inventory#1', 'undo:order#1']);
    expect(summarize(lost).failure).toBe('timeout');
  });

  it('takes a late success of an earlier attempt and ignores replies that come after the step is settled', async () => {
    await trigger(saga.conn.js, 'late-ok', { 'do:inventory': ['late', 'silent'] });
    const events = await waitForStatus(saga.role.store, 'order.late-ok', ['completed']);
    expect(attemptRows(events).filter((r) => r.step === 'inventory').map((r) => `#${r.attempt} ${r.outcome}`)).toEqual(['#1 timed_out', '#2 abandoned']);
    expect(events.filter((e) => e.type === 'StepSucceeded' && e.step === 'inventory').map((e) => e.type === 'StepSucceeded' && e.attempt)).toEqual([1]);

    // a success arriving after the saga already gave up on the step changes nothing
    await trigger(saga.conn.js, 'late-gone', { 'do:order': ['silent', 'late'] });
    const gone = await waitForStatus(saga.role.store, 'order.late-gone', ['compensated']);
    const versionAtEnd = gone.length;
    // the positive signal: the late success of do:order#2 is on the stream and the orchestrator has acknowledged it
    const lateReply = await waitFor(async () => (await readAll(saga.conn.js, saga.conn.jsm, 'SAGAS')).find((m) => {
      if (m.subject !== replySubject('order')) return false;
      const reply = json<{ sagaId: string; step: string; kind: string; attempt: number }>(m);
      return reply.sagaId === 'order.late-gone' && reply.step === 'order' && reply.kind === 'do' && reply.attempt === 2;
    }), 20_000, 'the late success of do:order#2');
    await waitFor(async () => (await saga.conn.jsm.consumers.info('SAGAS', 'saga-inputs')).ack_floor.stream_seq >= lateReply.seq, 60_000, 'the late success handled');
    const after = (await saga.role.store.load('order.late-gone'))!.record.events;
    expect(after).toHaveLength(versionAtEnd);
    expect(commandsOf(saga.services, 'order.late-gone')).toEqual(['do:order#1', 'do:order#2', 'undo:order#1']);
  });

  it('ignores duplicate triggers and duplicate replies that escaped dedup', async () => {
    await trigger(saga.conn.js, 'dup');
    await saga.conn.js.publish('saga.in.trigger.order', JSON.stringify({ id: 'dup', data: { orderId: 'dup' } }), { msgID: 'another-id' });
    const events = await waitForStatus(saga.role.store, 'order.dup', ['completed']);
    for (const attempt of [1, 1, 2]) {
      await saga.conn.js.publish(replySubject('order'), JSON.stringify({ sagaId: 'order.dup', step: 'inventory', kind: 'do', attempt, type: 'OutOfStock' }), { msgID: `dup-reply-${attempt}-${Math.random()}` });
      await saga.conn.js.publish(replySubject('order'), JSON.stringify({ sagaId: 'order.dup', step: 'shipping', kind: 'do', attempt, type: 'Shipped' }), { msgID: `dup-ship-${attempt}-${Math.random()}` });
    }
    await waitFor(async () => {
      const infos = await Promise.all(['saga-triggers', 'saga-inputs'].map((durable) => saga.conn.jsm.consumers.info('SAGAS', durable)));
      return infos.every((info) => info.num_pending === 0 && info.num_ack_pending === 0);
    }, 60_000, 'the orchestrator to drain its inputs');
    expect((await saga.role.store.load('order.dup'))!.record.events).toHaveLength(events.length);
    expect(commandsOf(saga.services, 'order.dup')).toEqual(ALL_DO);
  });

  it('parks a saga whose compensation keeps failing, alerts, and resumes it on retry', async () => {
    await trigger(saga.conn.js, 'stuck', { 'do:payment': ['fail'], 'undo:inventory': ['fail', 'silent', 'fail', 'fail', 'ok'] });
    const parked = await waitForStatus(saga.role.store, 'order.stuck', ['parked']);
    expect(summarize(parked)).toMatchObject({ status: 'parked', currentStep: 'inventory', parks: 1 });
    const alerts = await waitFor(async () => {
      const all = (await readAll(saga.conn.js, saga.conn.jsm, 'ALERTS')).filter((m) => m.subject === 'alerts.saga.order');
      return all.length > 0 && all;
    }, 60_000, 'the parked alert');
    expect(alerts.map((m) => json(m))).toEqual([
      expect.objectContaining({ id: 'saga-parked:order.stuck:1', kind: 'SagaParked', sagaId: 'order.stuck', step: 'inventory', reason: 'ReleaseFailed after 3 attempts' }),
    ]);

    expect((await registry.getSingleMetric('tidemark_saga_parked_total')!.get()).values.find((v) => v.labels.saga === 'order')?.value).toBe(1);

    const resumed = await saga.role.orchestrator.drive('order.stuck', { type: 'Retry', now: Date.now() });
    expect(resumed.applied).toBe(true);
    const done = await waitForStatus(saga.role.store, 'order.stuck', ['compensated']);
    expect(attemptRows(done).filter((r) => r.kind === 'undo').map((r) => `${r.step}#${r.attempt} ${r.outcome}`)).toEqual([
      'inventory#1 failed', 'inventory#2 timed_out', 'inventory#3 failed', 'inventory#4 failed', 'inventory#5 succeeded', 'order#1 succeeded',
    ]);
  });

  it('counts what happened in the metrics registry', async () => {
    const value = async (name: string) => ((await registry.getSingleMetric(name)!.get()).values.find((v) => v.labels.saga === 'order')?.value ?? 0);
    const latencyCount = async () => ((await registry.getSingleMetric('tidemark_saga_compensation_start_seconds')!.get()).values as Array<{ metricName?: string; value: number }>)
      .find((v) => v.metricName === 'tidemark_saga_compensation_start_seconds_count')?.value ?? 0;
    const names = ['tidemark_saga_started_total', 'tidemark_saga_completed_total', 'tidemark_saga_compensated_total', 'tidemark_saga_parked_total'];
    const before = [...(await Promise.all(names.map(value))), await latencyCount()];
    // its own sagas, so the counts do not depend on what other tests ran
    await trigger(saga.conn.js, 'counted-ok');
    await trigger(saga.conn.js, 'counted-fail', { 'do:payment': ['fail'] });
    await waitForStatus(saga.role.store, 'order.counted-ok', ['completed']);
    await waitForStatus(saga.role.store, 'order.counted-fail', ['compensated']);
    const after = [...(await Promise.all(names.map(value))), await latencyCount()];
    expect(after.map((n, i) => n - before[i]!)).toEqual([2, 1, 1, 0, 1]);
  });
});
