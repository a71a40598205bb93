import { describe, expect, it } from 'vitest';
import { EVENT_COUNT_HEADER, packEvents, type TidemarkEvent } from '../../src/core/envelope.ts';
import { contentFingerprint, eventIdentity } from '../../src/core/identity.ts';
import { RecentIds } from '../../src/core/recent-ids.ts';
import { refillRecentIds } from '../../src/ingest/recent-refill.ts';
import { testConfig } from '../harness/config.ts';
import { useConnectedNats } from '../harness/nats-client.ts';
import { streamCount, waitFor } from '../harness/streams.ts';
import { headers } from '@nats-io/transport-node';

const CAPACITY = 20_000;
const nats = useConnectedNats(testConfig());

const event = (source: string, n: number): TidemarkEvent => ({ source, type: 'sale', id: `r-${n}`, key: null, occurredAt: 1_700_000_000_000 + n, receivedAt: 1_700_000_000_000 + n, data: { amount: `${n}.10` }, seq: n + 1 });

async function refill(capacity: number) {
  const recent = new RecentIds(capacity);
  const outcome = await refillRecentIds(nats.jsm, recent, { capacity, budgetMs: 30_000, window: 64, stop: new AbortController().signal });
  return { recent, outcome };
}

describe('refilling the gateway recent ids from the tail of EVENTS', () => {
  it('reads the last ingest.recentIds lone events back, with their fingerprints, and stops there', async () => {
    const { nc, jsm } = nats;
    // more than the capacity: the oldest must not be read
    const total = CAPACITY + 500;
    for (let n = 0; n < total; n++) nc.publish('events.lone.sale', JSON.stringify(event('lone', n)));
    await nc.flush();
    await waitFor(async () => (await streamCount(jsm, 'EVENTS')) === total, 60_000, 'EVENTS to hold every event');

    const { recent, outcome } = await refill(CAPACITY);
    console.log(`refill of ${CAPACITY} lone events: ${outcome.ms} ms, ${outcome.messages} messages`);
    expect(outcome).toMatchObject({ events: CAPACITY, messages: CAPACITY, complete: true });
    for (let n = total - CAPACITY; n < total; n++) expect(recent.get(eventIdentity('lone', `r-${n}`))).toBe(contentFingerprint(event('lone', n)));
    expect(recent.has(eventIdentity('lone', `r-${total - CAPACITY - 1}`))).toBe(false);
  }, 120_000);

  it('reads packs as their events: 20,000 events in packs of 200 take 100 messages', async () => {
    const { nc, jsm } = nats;
    const before = await streamCount(jsm, 'EVENTS');
    const PACK = 200;
    for (let p = 0; p < CAPACITY / PACK; p++) {
      const h = headers();
      h.set(EVENT_COUNT_HEADER, String(PACK));
      nc.publish('events.packed.sale', packEvents(Array.from({ length: PACK }, (_, i) => JSON.stringify(event('packed', p * PACK + i)))), { headers: h });
    }
    await nc.flush();
    await waitFor(async () => (await streamCount(jsm, 'EVENTS')) === before + CAPACITY / PACK, 60_000, 'EVENTS to hold every pack');

    const { recent, outcome } = await refill(CAPACITY);
    console.log(`refill of ${CAPACITY} packed events: ${outcome.ms} ms, ${outcome.messages} messages`);
    expect(outcome).toMatchObject({ events: CAPACITY, messages: CAPACITY / PACK, complete: true });
    for (let n = 0; n < CAPACITY; n++) expect(recent.get(eventIdentity('packed', `r-${n}`))).toBe(contentFingerprint(event('packed', n)));
    expect(recent.has(eventIdentity('lone', `r-${CAPACITY + 499}`))).toBe(false);
  }, 120_000);

  it('stops at the start of a short stream, and gives up at its time budget with the newest events it read', async () => {
    const { recent, outcome } = await refill(1_000_000);
    expect(outcome.complete).toBe(true);
    expect(outcome.events).toBe(2 * CAPACITY + 500);
    expect(recent.has(eventIdentity('lone', 'r-0'))).toBe(true);

    const cut = new RecentIds(CAPACITY);
    const partial = await refillRecentIds(nats.jsm, cut, { capacity: CAPACITY, budgetMs: 1, window: 1, stop: new AbortController().signal });
    expect(partial.complete).toBe(false);
    expect(partial.events).toBeLessThan(CAPACITY);
  }, 120_000);
});
