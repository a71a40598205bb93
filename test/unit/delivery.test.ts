import type { JsMsg } from '@nats-io/jetstream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { delivery, deliveryCount } from '../../src/nats/js-msg.ts';

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

  it('agrees with splitting the subject on every well-formed one (fast-check)', () => {
    const token = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
    const number = fc.bigInt({ min: 1n, max: 2n ** 53n - 1n });
    fc.assert(
      fc.property(fc.boolean(), token, token, token, token, number, number, fc.bigInt({ min: 10n ** 9n, max: 10n ** 19n }), fc.option(token), fc.integer({ min: 1, max: 100_000 }), (long, domain, account, stream, consumer, seq, dseq, nanos, tail, deliveries) => {
        const head = long ? `$JS.ACK.${domain}.${account}.${stream}.${consumer}` : `$JS.ACK.${stream}.${consumer}`;
        const reply = `${head}.${deliveries}.${seq}.${dseq}.${nanos}.0${long && tail !== null ? `.${tail}` : ''}`;
        // the reference: split into tokens and read them by position
        const tokens = reply.split('.');
        const base = tokens.length === 9 ? 4 : 6;
        expect(delivery(msg(reply, -1, -1n))).toEqual({ seq: Number(tokens[base + 1]), storedAtMs: Number(tokens[base + 3]!.slice(0, -6)) });
        expect(deliveryCount(msg(reply, -1, -1n))).toBe(Number(tokens[base]));
      }),
      { numRuns: 1_000 },
    );
  });
});
