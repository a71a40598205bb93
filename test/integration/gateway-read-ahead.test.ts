import { headers } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { INGEST_PACK_HEADER } from '../../src/ingest/ingest-packs.ts';
import { testConfig } from '../harness/config.ts';
import { useTestIngest } from '../harness/ingest.ts';
import { eventsOnStream, waitFor } from '../harness/streams.ts';

const LIMIT = 2 * 1024 * 1024;
const PACKS = 24;
const ITEMS = 1_000;
const ingest = useTestIngest(testConfig({ ingest: { readAheadBytes: LIMIT } }));

describe('NATS gateway read-ahead', () => {
  it('holds at most ingest.readAheadBytes of large packs at once, and forwards every event of them', async () => {
    const { nc, js, jsm, gateway } = ingest;
    // packs of about 300 KiB (HTTP packs run up to 512 KiB), together 3.5 times the limit, published at once: far faster than the gateway handles them
    const now = Date.now();
    const padding = 'p'.repeat(240);
    let largest = 0;
    for (let p = 0; p < PACKS; p++) {
      const body = Array.from({ length: ITEMS }, (_, i) => JSON.stringify({ id: `r-${p}-${i}`, occurredAt: now - i, data: { amount: '1.25', note: padding } })).join('\n');
      largest = Math.max(largest, Buffer.byteLength(body));
      const h = headers();
      h.set(INGEST_PACK_HEADER, String(ITEMS));
      nc.publish(`ingest.big-${p % 3}.sale`, body, { headers: h });
    }
    await nc.flush();
    await waitFor(async () => (await jsm.streams.info('INGEST')).state.messages >= PACKS, 30_000, 'INGEST to hold every pack');
    const total = (await jsm.streams.info('INGEST')).state.bytes;
    expect(total).toBeGreaterThan(3 * LIMIT);
    await waitFor(async () => {
      const [stream, consumer] = await Promise.all([jsm.streams.info('INGEST'), jsm.consumers.info('INGEST', 'gateway')]);
      return consumer.ack_floor.stream_seq === stream.state.last_seq;
    }, 120_000, 'the gateway to ack every pack');
    const ids = new Set((await eventsOnStream(js, jsm)).map((e) => e.id));
    expect(ids.size).toBe(PACKS * ITEMS);
    expect(gateway.stats.accepted).toBe(PACKS * ITEMS);
    // it did read ahead (more than one pack at a time), never past the limit
    expect(gateway.readAhead.peakBytes).toBeGreaterThan(largest);
    expect(gateway.readAhead.peakBytes).toBeLessThanOrEqual(LIMIT);
    expect(gateway.readAhead.bytes).toBe(0);
  });
});
