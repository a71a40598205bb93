import type { JsMsg } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { delivery } from '../src/nats/batch-consumer.ts';

/** What the client's accessors would answer for a reply subject, and the subject itself. */
const msg = (reply: string, seq: number, nanos: bigint): JsMsg => ({ reply, seq, timestampNanos: nanos }) as unknown as JsMsg;

describe('delivery metadata from the reply subject', () => {
  it('reads sequence and exact store time from both reply formats', () => {
    const nanos = 1_795_316_105_833_123_456n;
    expect(delivery(msg(`$JS.ACK.INGEST.gateway.1.4242.17.${nanos}.3`, 0, 0n))).toEqual({ seq: 4242, storedAtMs: 1_795_316_105_833 });
    expect(delivery(msg(`$JS.ACK.hub.ACCHASH.INGEST.gateway.2.4242.17.${nanos}.3.tok`, 0, 0n))).toEqual({ seq: 4242, storedAtMs: 1_795_316_105_833 });
  });

  it('falls back to the client when the subject is not a JetStream ack subject', () => {
    expect(delivery(msg('_INBOX.abc', 7, 1_000_000_000n))).toEqual({ seq: 7, storedAtMs: 1_000 });
  });
});
