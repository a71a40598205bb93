import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTidemarkError } from '../../src/core/errors.ts';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/core/config.ts';
import { checkDefinitions, defineSaga } from '../../src/saga/definition.ts';
import { sagaIdOf } from '../../src/saga/subjects.ts';
import { backoffDelay, commandIdOf, decide } from '../../src/saga/logic/decide.ts';
import { evolve, fold } from '../../src/saga/logic/evolve.ts';
import { compilePayload } from '../../src/saga/logic/payload.ts';
import { attemptRows, summarize } from '../../src/saga/logic/timeline.ts';
import type { SagaDefinition, SagaEvent, SagaInput, SagaState } from '../../src/saga/logic/types.ts';

const T0 = 1_000_000;

/** Three steps; `pay` retries `Busy` twice with 100ms backoff; `note` has no compensation. */
const def: SagaDefinition = defineSaga({
  name: 'trip',
  steps: [
    {
      name: 'hotel',
      command: 'saga.cmd.hotel.book',
      payload: { city: '$input.city' },
      success: ['Booked'],
      failure: ['Full'],
      timeout: 1_000,
      retry: { attempts: 2 },
      compensation: { command: 'saga.cmd.hotel.cancel', payload: { booking: '$steps.hotel.ref', why: '$failure.type' }, success: ['Cancelled'], failure: ['CancelFailed'], timeout: 500 },
    },
    {
      name: 'pay',
      command: 'saga.cmd.pay.charge',
      payload: (ctx) => ({ amount: (ctx.input as { amount: number }).amount, booking: (ctx.steps.hotel as { ref: string }).ref }),
      success: ['Charged'],
      failure: ['Declined', 'Busy'],
      timeout: 1_000,
      retry: { attempts: 3, backoff: { initial: 100, factor: 2, max: 1_000 }, retryable: ['Busy'], onTimeout: 'compensate' },
      compensation: { command: 'saga.cmd.pay.refund', success: ['Refunded'], timeout: 500 },
    },
    { name: 'note', command: 'saga.cmd.note.write', success: ['Written'], failure: ['Nope'], timeout: 1_000 },
  ],
  compensationRetry: { attempts: 2, backoff: { initial: 50, factor: 2, max: 1_000 } },
});

const start = (now = T0): SagaInput => ({ type: 'Start', now, sagaId: 'trip.t1', triggerId: 't1', input: { city: 'Taipei', amount: 12 } });
const replyOf = (step: string, eventType: string, attempt = 1, now = T0 + 10, kind: 'do' | 'undo' = 'do', data: unknown = {}): SagaInput => ({ type: 'Reply', now, step, kind, attempt, eventType, data, storedAt: now - 1 });
const tick = (now: number): SagaInput => ({ type: 'Tick', now });

/** given(inputs) applies each through decide + evolve; `then` names the events of the last one. */
function given(...inputs: SagaInput[]): { state: SagaState; events: SagaEvent[]; when: (input: SagaInput) => SagaEvent[] } {
  let state = fold([]);
  const events: SagaEvent[] = [];
  for (const input of inputs) {
    for (const event of decide(def, state, input)) {
      events.push(event);
      state = evolve(state, event);
    }
  }
  return { state, events, when: (input) => decide(def, state, input) };
}

const brief = (events: SagaEvent[]): string[] =>
  events.map((e) => {
    switch (e.type) {
      case 'CommandDispatched': return `dispatch ${e.kind}:${e.step}#${e.attempt}`;
      case 'StepSucceeded': return `ok ${e.kind}:${e.step}#${e.attempt}`;
      case 'StepFailed': return `failed ${e.kind}:${e.step}#${e.attempt} ${e.reason}${e.eventType ? ` ${e.eventType}` : ''}`;
      case 'RetryScheduled': return `retry ${e.kind}:${e.step}#${e.attempt} in ${e.retryAt - e.at}ms`;
      case 'CompensationStarted': return `compensate from ${e.step}${e.includeFailed ? ' (included)' : ''}`;
      case 'SagaParked': return `parked ${e.step}: ${e.reason}`;
      default: return e.type;
    }
  });

const booked = [start(), replyOf('hotel', 'Booked', 1, T0 + 10, 'do', { ref: 'H-1' })];

describe('saga decide/evolve', () => {
  it('starts with the first step, its payload mapped from the input', () => {
    const events = given().when(start());
    expect(brief(events)).toEqual(['SagaStarted', 'dispatch do:hotel#1']);
    expect(events[1]).toMatchObject({ commandId: 'trip.t1:hotel:do:1', subject: 'saga.cmd.hotel.book', payload: { city: 'Taipei' }, deadline: T0 + 1_000 });
  });

  it('ignores a second trigger for the same saga', () => {
    expect(given(start()).when(start(T0 + 5))).toEqual([]);
  });

  it('moves to the next step on success, passing earlier results to payload functions', () => {
    const events = given(start()).when(replyOf('hotel', 'Booked', 1, T0 + 10, 'do', { ref: 'H-1' }));
    expect(brief(events)).toEqual(['ok do:hotel#1', 'dispatch do:pay#1']);
    expect(events[1]).toMatchObject({ payload: { amount: 12, booking: 'H-1' } });
  });

  it('completes after the last step', () => {
    const g = given(...booked, replyOf('pay', 'Charged', 1, T0 + 20));
    expect(brief(g.when(replyOf('note', 'Written', 1, T0 + 30)))).toEqual(['ok do:note#1', 'SagaCompleted']);
  });

  it('compensates at once on a failure that is not retryable, skipping the failed step itself', () => {
    const events = given(...booked).when(replyOf('pay', 'Declined', 1, T0 + 20));
    expect(brief(events)).toEqual(['failed do:pay#1 failure Declined', 'compensate from pay', 'dispatch undo:hotel#1']);
    expect(events[2]).toMatchObject({ payload: { booking: 'H-1', why: 'Declined' }, commandId: 'trip.t1:hotel:undo:1' });
    expect(events[1]).toMatchObject({ failedAt: T0 + 19 });
  });

  it('retries a retryable failure after an exponential backoff, then gives up and compensates', () => {
    const g = given(...booked, replyOf('pay', 'Busy', 1, T0 + 20));
    expect(brief(g.events.slice(-2))).toEqual(['failed do:pay#1 failure Busy', 'retry do:pay#2 in 100ms']);
    expect(g.when(tick(T0 + 119))).toEqual([]);
    expect(brief(g.when(tick(T0 + 120)))).toEqual(['dispatch do:pay#2']);
    const g2 = given(...booked, replyOf('pay', 'Busy', 1, T0 + 20), tick(T0 + 120), replyOf('pay', 'Busy', 2, T0 + 130));
    expect(brief(g2.events.slice(-1))).toEqual(['retry do:pay#3 in 200ms']);
    const g3 = given(...booked, replyOf('pay', 'Busy', 1, T0 + 20), tick(T0 + 120), replyOf('pay', 'Busy', 2, T0 + 130), tick(T0 + 330));
    expect(brief(g3.when(replyOf('pay', 'Busy', 3, T0 + 340)))).toEqual(['failed do:pay#3 failure Busy', 'compensate from pay', 'dispatch undo:hotel#1']);
  });

  it('times a step out: retried when the policy says so, otherwise compensated with the uncertain step included', () => {
    expect(brief(given(start()).when(tick(T0 + 1_000)))).toEqual(['failed do:hotel#1 timeout', 'retry do:hotel#2 in 200ms']);
    const events = given(...booked).when(tick(T0 + 10 + 1_000));
    expect(brief(events)).toEqual(['failed do:pay#1 timeout', 'compensate from pay (included)', 'dispatch undo:pay#1']);
    expect(events[1]).toMatchObject({ failedAt: T0 + 1_010 });
  });

  it('accepts a late success of an earlier attempt, but not a stale failure', () => {
    const g = given(start(), tick(T0 + 1_000), tick(T0 + 1_200));
    expect(g.state.inFlight?.attempt).toBe(2);
    expect(g.when(replyOf('hotel', 'Full', 1, T0 + 1_300))).toEqual([]);
    expect(brief(g.when(replyOf('hotel', 'Booked', 1, T0 + 1_300)))).toEqual(['ok do:hotel#1', 'dispatch do:pay#1']);
    const rows = attemptRows([...g.events, ...g.when(replyOf('hotel', 'Booked', 1, T0 + 1_300))]);
    expect(rows.map((r) => `${r.step}#${r.attempt} ${r.outcome}`)).toEqual(['hotel#1 timed_out', 'hotel#2 abandoned', 'pay#1 running']);
  });

  it('ignores duplicate and unknown replies', () => {
    const g = given(...booked);
    expect(g.when(replyOf('hotel', 'Booked', 1, T0 + 20))).toEqual([]);
    expect(g.when(replyOf('pay', 'Surprise', 1, T0 + 20))).toEqual([]);
    expect(g.when(replyOf('pay', 'Charged', 2, T0 + 20))).toEqual([]);
    expect(g.when(replyOf('ghost', 'Charged', 1, T0 + 20))).toEqual([]);
  });

  it('skips steps without a compensation and ends compensated', () => {
    const g = given(...booked, replyOf('pay', 'Charged', 1, T0 + 20));
    expect(brief(g.when(replyOf('note', 'Nope', 1, T0 + 30)))).toEqual(['failed do:note#1 failure Nope', 'compensate from note', 'dispatch undo:pay#1']);
    const g2 = given(...booked, replyOf('pay', 'Charged', 1, T0 + 20), replyOf('note', 'Nope', 1, T0 + 30), replyOf('pay', 'Refunded', 1, T0 + 40, 'undo'));
    expect(brief(g2.events.slice(-2))).toEqual(['ok undo:pay#1', 'dispatch undo:hotel#1']);
    expect(brief(g2.when(replyOf('hotel', 'Cancelled', 1, T0 + 50, 'undo')))).toEqual(['ok undo:hotel#1', 'SagaCompensated']);
  });

  it('retries a failing compensation, parks it, and resumes or aborts on an operator', () => {
    const failed = [...booked, replyOf('pay', 'Declined', 1, T0 + 20)];
    const g = given(...failed, replyOf('hotel', 'CancelFailed', 1, T0 + 30, 'undo'));
    expect(brief(g.events.slice(-2))).toEqual(['failed undo:hotel#1 failure CancelFailed', 'retry undo:hotel#2 in 50ms']);
    const parked = given(...failed, replyOf('hotel', 'CancelFailed', 1, T0 + 30, 'undo'), tick(T0 + 80), tick(T0 + 80 + 500));
    expect(brief(parked.events.slice(-2))).toEqual(['failed undo:hotel#2 timeout', 'parked hotel: timed out after 2 attempts']);
    expect(parked.state.status).toBe('parked');
    expect(parked.when(tick(T0 + 100_000))).toEqual([]);

    expect(brief(parked.when({ type: 'Retry', now: T0 + 2_000 }))).toEqual(['SagaResumed', 'dispatch undo:hotel#3']);
    const resumed = given(...failed, replyOf('hotel', 'CancelFailed', 1, T0 + 30, 'undo'), tick(T0 + 80), tick(T0 + 580), { type: 'Retry', now: T0 + 2_000 });
    expect(brief(resumed.when(replyOf('hotel', 'CancelFailed', 3, T0 + 2_010, 'undo'))).at(-1)).toBe('retry undo:hotel#4 in 50ms');

    expect(brief(parked.when({ type: 'Abort', now: T0 + 2_000, reason: 'refunded by hand' }))).toEqual(['SagaAborted']);
    expect(given(...booked).when({ type: 'Abort', now: T0, reason: 'x' })).toEqual([]);
    // the stuck undo finally answering on its own resumes the saga without an operator
    expect(brief(parked.when(replyOf('hotel', 'Cancelled', 2, T0 + 3_000, 'undo')))).toEqual(['ok undo:hotel#2', 'SagaCompensated']);
  });

  it('fails a step whose payload function throws, without spending an attempt', () => {
    const broken = defineSaga({ name: 'b', steps: [{ name: 'a', command: 'saga.cmd.a', success: ['A'] }, { name: 'x', command: 'saga.cmd.x', payload: () => { throw new Error('no amount'); }, success: ['X'] }] });
    let state = fold([]);
    const all: SagaEvent[] = [];
    for (const input of [start(), replyOf('a', 'A')]) for (const e of decide(broken, state, input)) { all.push(e); state = evolve(state, e); }
    expect(brief(all)).toEqual(['SagaStarted', 'dispatch do:a#1', 'ok do:a#1', 'failed do:x#1 payload', 'compensate from x', 'SagaCompensated']);
    expect(summarize(all)).toMatchObject({ status: 'compensated', failedStep: 'x', failure: 'payload' });
  });

  it('names a saga after its trigger, keeping ids with any characters usable as KV keys', () => {
    expect(sagaIdOf('order', 'o-17_b')).toBe('order.o-17_b');
    expect(sagaIdOf('order', 'store 17/o.1')).toBe(`order.=${Buffer.from('store 17/o.1').toString('base64url')}`);
    expect(sagaIdOf('order', '=abc')).not.toBe('order.=abc');
    expect(commandIdOf('order.o-1', 'payment', 'undo', 2)).toBe('order.o-1:payment:undo:2');
  });

  it('computes capped exponential backoff', () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay({ initial: 100, factor: 3, max: 2_000 }, n))).toEqual([100, 300, 900, 2_000, 2_000]);
  });

  it('fills declarative payloads from $ paths and keeps $$ literals', () => {
    const fn = compilePayload({ id: '$sagaId', n: '$input.a.b', list: ['$steps.s.v', 'plain', '$$money'], missing: '$input.nope.deeper', k: 3 });
    expect(fn({ sagaId: 'x.1', input: { a: { b: 7 } }, steps: { s: { v: true } }, failure: null })).toEqual({ id: 'x.1', n: 7, list: [true, 'plain', '$money'], missing: undefined, k: 3 });
  });
});

describe('saga definitions', () => {
  const base = { name: 'ok', steps: [{ name: 'a', command: 'saga.cmd.a.do', success: ['Done'] }] };
  const problem = (spec: unknown): string => {
    try {
      defineSaga(spec as Parameters<typeof defineSaga>[0], 'under test');
      return 'valid';
    } catch (err) {
      expect(isTidemarkError(err, 'SAGA_DEFINITION_INVALID')).toBe(true);
      return (err as Error).message.split('\n').slice(1).map((l) => l.trim()).join(' | ');
    }
  };

  it('fills defaults for the timeout and retry policy', () => {
    const saga = defineSaga(base);
    expect(saga.steps[0]).toMatchObject({ timeout: 30_000, failure: [], retry: { attempts: 1, onTimeout: 'retry', retryable: [], backoff: { initial: 200, factor: 2, max: 30_000 } } });
    expect(saga.compensationRetry.attempts).toBe(5);
  });

  it('names the key of each problem', () => {
    expect(problem({ ...base, steps: [{ name: 'a', command: 'saga.cmd.a', success: ['A'], timout: '5s' }] })).toBe('steps[0].timout: unknown key');
    expect(problem({ ...base, steps: [{ name: 'a', command: 'saga.cmd.a', success: ['A'], timeout: 'soon' }] })).toMatch(/^steps\[0\]\.timeout: "soon" is not a duration/);
    expect(problem({ ...base, steps: [{ name: 'a', command: 'orders.create', success: ['A'] }] })).toBe('steps[0].command: "orders.create" must start with saga.cmd. so the SAGAS stream keeps and dedups it');
    expect(problem({ ...base, steps: [{ name: 'a', command: 'saga.cmd.*', success: ['A'] }] })).toBe('steps[0].command: "saga.cmd.*" is not a literal NATS subject');
    expect(problem({ ...base, steps: [{ name: 'a', command: 'saga.cmd.a', success: ['A'], failure: ['B'], retry: { retryable: ['C'] } }] })).toBe('steps[0].retry.retryable: "C" is not one of the step\'s failure types');
    expect(problem({ ...base, steps: [{ name: 'a', command: 'saga.cmd.a', success: ['A'], payload: { x: '$steps.b.id' } }, { name: 'b', command: 'saga.cmd.b', success: ['B'] }] })).toBe(
      'steps[0].payload.x: "$steps.b.id" reads a step that has not finished by then (readable: none)',
    );
    expect(problem({ ...base, steps: [{ name: 'a', command: 'saga.cmd.a', success: ['A'], payload: { x: '$inptu.id' } }] })).toMatch(/payload\.x: "\$inptu\.id" starts with an unknown root/);
    expect(problem({ ...base, steps: [{ name: 'a', command: 'saga.cmd.a', success: ['A'] }, { name: 'a', command: 'saga.cmd.b', success: ['B'] }] })).toBe('steps[1].name: "a" is used by an earlier step');
  });

  it('reads the config file form (as in examples/order-saga/README.md) and names a bad key with its full path', () => {
    const yaml = `
sagas:
  stream: { maxAge: 7d, duplicateWindow: 10m }
  definitions:
    - name: order
      steps:
        - name: payment
          command: saga.cmd.payment.charge
          payload: { orderId: $input.orderId, amount: $input.amount }
          success: [PaymentCharged]
          failure: [PaymentDeclined, PaymentUnavailable]
          timeout: 5s
          retry: { attempts: 3, backoff: { initial: 200ms, factor: 2, max: 5s }, retryable: [PaymentUnavailable] }
          compensation:
            command: saga.cmd.payment.refund
            payload: { chargeId: $steps.payment.chargeId }
            success: [PaymentRefunded]
            timeout: 5s
`;
    const config = parseConfig(parseYaml(yaml), {}, 'tidemark.yaml');
    const order = defineSaga(config.sagas.definitions[0]!, 'sagas.definitions[0]');
    expect(order.steps[0]).toMatchObject({ timeout: 5_000, retry: { attempts: 3, backoff: { initial: 200, factor: 2, max: 5_000 } } });
    expect(order.steps[0]!.payload({ sagaId: 'order.1', input: { orderId: 'o-1', amount: '12.50' }, steps: {}, failure: null })).toEqual({ orderId: 'o-1', amount: '12.50' });
    expect(() => parseConfig(parseYaml(yaml.replace('timeout: 5s', 'timout: 5s')), {}, 'tidemark.yaml')).toThrow(/sagas\.definitions\[0\]\.steps\[0\]\.timout: unknown key/);
  });

  it('refuses a set with a duplicate name or a timeout longer than the dedup window', () => {
    const long = defineSaga({ name: 'long', steps: [{ name: 'a', command: 'saga.cmd.a', success: ['A'], timeout: '20m' }] });
    expect(() => checkDefinitions([long], 600_000)).toThrow(/long\.a: timeout 20m is longer than sagas\.stream\.duplicateWindow 10m/);
    expect(() => checkDefinitions([def, def], 600_000)).toThrow(/"trip" is defined twice/);
  });
});

describe('saga invariants under any order of replies, timeouts and redeliveries', () => {
  const STEP_TYPES: Record<string, string[]> = {
    'do:hotel': ['Booked', 'Full'], 'do:pay': ['Charged', 'Declined', 'Busy'], 'do:note': ['Written', 'Nope'],
    'undo:hotel': ['Cancelled', 'CancelFailed'], 'undo:pay': ['Refunded'],
  };
  const action = fc.record({
    kind: fc.constantFrom('reply', 'reply', 'reply', 'tick', 'stale', 'retry', 'abort'),
    pick: fc.nat(10),
    advance: fc.integer({ min: 0, max: 1_500 }),
  });

  it('sends each attempt once, undoes only finished steps in reverse order, and ends for good', () => {
    fc.assert(
      fc.property(fc.array(action, { maxLength: 40 }), (actions) => {
        let state = fold([]);
        let now = T0;
        const log: SagaEvent[] = [];
        const apply = (input: SagaInput) => {
          const events = decide(def, state, input);
          for (const e of events) state = evolve(state, e);
          log.push(...events);
          // a redelivered input decides nothing new
          expect(decide(def, state, input)).toEqual([]);
        };
        apply(start(now));
        for (const a of actions) {
          now += a.advance;
          const busy = state.inFlight;
          if (a.kind === 'reply' && busy) {
            const types = STEP_TYPES[`${busy.kind}:${busy.step}`]!;
            apply(replyOf(busy.step, types[a.pick % types.length]!, busy.attempt, now, busy.kind, { ref: 'R' }));
          } else if (a.kind === 'stale' && busy) {
            apply(replyOf(busy.step, STEP_TYPES[`${busy.kind}:${busy.step}`]![0]!, busy.attempt + 1 + (a.pick % 2), now, busy.kind));
          } else if (a.kind === 'retry' || a.kind === 'abort') {
            apply(a.kind === 'retry' ? { type: 'Retry', now } : { type: 'Abort', now, reason: 'test' });
          } else {
            apply(tick(now));
          }
        }
        const dispatched = log.filter((e): e is Extract<SagaEvent, { type: 'CommandDispatched' }> => e.type === 'CommandDispatched');
        expect(new Set(dispatched.map((d) => d.commandId)).size).toBe(dispatched.length);
        for (const key of new Set(dispatched.map((d) => `${d.kind}:${d.step}`))) {
          expect(dispatched.filter((d) => `${d.kind}:${d.step}` === key).map((d) => d.attempt)).toEqual(dispatched.filter((d) => `${d.kind}:${d.step}` === key).map((_, i) => i + 1));
        }
        const undos = [...new Set(dispatched.filter((d) => d.kind === 'undo').map((d) => d.step))];
        const compensable = state.done.filter((s) => s !== 'note');
        expect(undos).toEqual(compensable.slice().reverse().slice(0, undos.length));
        const terminalAt = log.findIndex((e) => e.type === 'SagaCompleted' || e.type === 'SagaCompensated' || e.type === 'SagaAborted');
        if (terminalAt >= 0) expect(terminalAt).toBe(log.length - 1);
        if (state.status === 'completed') expect(undos).toEqual([]);
        if (state.status === 'compensated') expect([...state.undone].sort()).toEqual([...compensable].sort());
      }),
      { numRuns: 500 },
    );
  });
});
