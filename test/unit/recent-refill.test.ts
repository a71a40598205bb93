import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packEvents, type TidemarkEvent } from '../../src/core/envelope.ts';
import { contentFingerprint, eventIdentity } from '../../src/core/identity.ts';
import { RecentIds } from '../../src/core/recent-ids.ts';
import { seenEventsOf, tailOldestFirst, type SeenEvent } from '../../src/ingest/recent-refill.ts';

describe('tailOldestFirst', () => {
  it('gives the newest `capacity` events of messages read newest first, in stream order', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 40 }), fc.integer({ min: 1, max: 60 }), (sizes, capacity) => {
        // the stream, oldest first: message m holds events numbered on from the last one's
        let n = 0;
        const stream = sizes.map((size) => Array.from({ length: size }, (): SeenEvent => [`e${n}`, n++]));
        const events = stream.flat();
        expect(tailOldestFirst([...stream].reverse(), capacity)).toEqual(events.slice(Math.max(0, events.length - capacity)));
      }),
    );
  });

  it('added to RecentIds, leaves every one of the newest `capacity` known with its fingerprint', () => {
    const stream = Array.from({ length: 50 }, (_, m) => Array.from({ length: 7 }, (__, i): SeenEvent => [`e${m * 7 + i}`, m * 7 + i]));
    const recent = new RecentIds(100);
    for (const [id, fp] of tailOldestFirst([...stream].reverse(), 100)) recent.add(id, fp);
    for (let n = 250; n < 350; n++) expect(recent.get(`e${n}`)).toBe(n);
    expect(recent.has('e249')).toBe(false);
  });
});

describe('seenEventsOf', () => {
  const event = (id: string, amount: string): TidemarkEvent => ({ source: 'till', type: 'sale', id, key: null, occurredAt: 1_700_000_000_000, receivedAt: 1_700_000_000_500, data: { amount, note: { b: 1, a: 2 } }, seq: 3 });

  it('reads a lone event and a pack into the identities and fingerprints the gateway keeps', () => {
    const a = event('a', '1.10');
    const b = event('b', '2.20');
    const expected = (e: TidemarkEvent): SeenEvent => [eventIdentity(e.source, e.id), contentFingerprint(e)];
    expect(seenEventsOf(new TextEncoder().encode(JSON.stringify(a)))).toEqual([expected(a)]);
    expect(seenEventsOf(packEvents([JSON.stringify(a), JSON.stringify(b)]))).toEqual([expected(a), expected(b)]);
    // a different content under the same identity is told apart
    expect(seenEventsOf(packEvents([JSON.stringify(event('a', '9.99'))]))[0]![1]).not.toBe(expected(a)[1]);
  });

  it('gives nothing for a body that holds no events', () => {
    expect(seenEventsOf(new TextEncoder().encode('not json'))).toEqual([]);
  });
});
