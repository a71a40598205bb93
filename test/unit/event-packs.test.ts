import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EVENT_COUNT_HEADER, decodeEvents, eventCount, eventSubject, type TidemarkEvent } from '../../src/core/envelope.ts';
import { packBatch } from '../../src/ingest/event-packs.ts';

const event = (seq: number, source: string, type: string, note = ''): TidemarkEvent => ({
  id: `e-${seq}`,
  type,
  source,
  key: null,
  occurredAt: 1_700_000_000_000 + seq,
  receivedAt: 1_700_000_000_500 + seq,
  data: { amount: `${seq}.10`, note },
  seq,
});

const batch = fc.array(
  fc.option(fc.record({ source: fc.constantFrom('s1', 's2', 's3'), type: fc.constantFrom('sale', 'refund'), note: fc.string({ maxLength: 40 }) }), { nil: undefined }),
  { maxLength: 200 },
).map((items) => items.map((item, i) => (item ? event(i + 1, item.source, item.type, item.note) : undefined)));

describe('packing events into EVENTS messages', () => {
  it('keeps every valid event exactly once, by subject and in arrival order, within the limits', () => {
    fc.assert(
      fc.property(batch, fc.integer({ min: 1, max: 30 }), fc.integer({ min: 200, max: 4_000 }), (events, eventsPerMessage, maxBytes) => {
        const packs = packBatch(events, { eventsPerMessage, maxBytes });
        const unpacked = packs.flatMap((pack) => {
          const decoded = decodeEvents(typeof pack.item.data === 'string' ? new TextEncoder().encode(pack.item.data) : pack.item.data);
          expect(decoded.map((e) => e.seq)).toEqual(pack.members.map((i) => events[i]!.seq));
          expect(new Set(decoded.map(eventSubject))).toEqual(new Set([pack.item.subject]));
          expect(decoded.length).toBeLessThanOrEqual(eventsPerMessage);
          expect(eventCount(pack.item.headers ? { get: (name) => pack.item.headers![name] ?? '' } : undefined)).toBe(decoded.length);
          if (decoded.length > 1) expect(pack.item.data.length).toBeLessThanOrEqual(maxBytes);
          return decoded;
        });
        expect(unpacked.map((e) => e.id).sort()).toEqual(events.filter((e) => e !== undefined).map((e) => e.id).sort());
        // per subject, events keep the order they arrived in
        for (const subject of new Set(unpacked.map(eventSubject))) {
          const seqs = packs.filter((p) => p.item.subject === subject).flatMap((p) => p.members.map((i) => events[i]!.seq));
          expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
        }
      }),
    );
  });

  it('gives a redelivered batch the same message ids, a lone event its (source, id), and different packs different ids', () => {
    const events = [event(1, 's1', 'sale'), event(2, 's1', 'sale'), event(3, 's2', 'sale'), undefined, event(5, 's1', 'sale')];
    const first = packBatch(events, { eventsPerMessage: 2, maxBytes: 100_000 });
    const again = packBatch(events.map((e) => (e ? { ...e } : e)), { eventsPerMessage: 2, maxBytes: 100_000 });
    expect(again.map((p) => p.item.msgId)).toEqual(first.map((p) => p.item.msgId));
    expect(first.map((p) => [p.item.subject, p.members])).toEqual([
      ['events.s1.sale', [0, 1]],
      ['events.s1.sale', [4]],
      ['events.s2.sale', [2]],
    ]);
    expect(first[1]!.item.msgId).toBe('s1.e-5');
    expect(first[0]!.item.headers).toEqual({ [EVENT_COUNT_HEADER]: '2' });
    const regrouped = packBatch([events[0], events[4]], { eventsPerMessage: 2, maxBytes: 100_000 });
    expect(regrouped[0]!.item.msgId).not.toBe(first[0]!.item.msgId);
  });

  it('reads a lone event written over several lines, and refuses what is not events', () => {
    const text = JSON.stringify(event(1, 's1', 'sale'), null, 2);
    expect(decodeEvents(new TextEncoder().encode(text)).map((e) => e.id)).toEqual(['e-1']);
    expect(() => decodeEvents(new TextEncoder().encode('{"id":1}\nnot json'))).toThrow();
  });
});
