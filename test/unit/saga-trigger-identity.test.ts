import type { JsMsg } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { routeMessage } from '../../src/saga/inputs.ts';

/** The fields routeMessage reads of a delivered trigger: routing is pure over them. */
function triggerMsg(body: unknown, seq: number, msgId?: string): JsMsg {
  return {
    subject: 'saga.in.trigger.order',
    seq,
    info: { stream: 'SAGAS' },
    headers: msgId === undefined ? undefined : { get: (name: string) => (name === 'Nats-Msg-Id' ? msgId : '') },
    json: () => body,
  } as unknown as JsMsg;
}

const sagaIdOf = (body: unknown, seq = 5, msgId?: string): string => {
  const routed = routeMessage(triggerMsg(body, seq, msgId), 0);
  return routed.sagaId;
};

describe('saga trigger identity', () => {
  it('names the saga after (source, id) when the trigger has a source, after id alone otherwise', () => {
    expect(sagaIdOf({ id: 'o-17' })).toBe('order.o-17');
    const a = sagaIdOf({ id: '0', source: 'till-a' });
    const b = sagaIdOf({ id: '0', source: 'till-b' });
    expect(a).not.toBe(b);
    expect(sagaIdOf({ id: '0', source: 'till-a' }, 9)).toBe(a);
  });

  it('puts generated trigger ids in the reserved namespace and refuses client ids there', () => {
    const fromSeq = sagaIdOf({ data: {} }, 7);
    const fromHeader = sagaIdOf({ data: {} }, 8, 'seq-7');
    expect(fromSeq).not.toBe(fromHeader);
    expect(fromSeq).not.toBe(sagaIdOf({ id: 'SAGAS-7' }));
    expect(() => sagaIdOf({ id: '~SAGAS-7' })).toThrow(/starts with "~"/);
  });
});
