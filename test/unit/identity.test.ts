import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { contentFingerprint, eventIdentity, idFromMsgId, idFromSequence, isReservedId, MAX_PLAIN_MSG_ID, natsMsgId } from '../../src/core/identity.ts';

/** What the envelope accepts as a source: one subject token. */
const source = fc.string({ minLength: 1, maxLength: 12, unit: fc.constantFrom('a', 'b', ':', '-', '~', 'p', 'é', '\u0000', '漢') });
const id = fc.oneof(fc.string({ minLength: 1, maxLength: 20 }), fc.string({ minLength: 100, maxLength: 200 }), fc.string({ minLength: 1, maxLength: 8, unit: fc.constantFrom('.', ':', '\r', '\n', 'x', ' ') }));

describe('event identity', () => {
  it('gives distinct (source, id) pairs distinct keys and message ids, header-safe and short', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(source, id), { minLength: 2, maxLength: 30 }), (pairs) => {
        const distinct = new Set(pairs.map((p) => JSON.stringify(p))).size;
        expect(new Set(pairs.map(([s, i]) => eventIdentity(s, i))).size).toBe(distinct);
        const msgIds = pairs.map(([s, i]) => natsMsgId(s, i));
        expect(new Set(msgIds).size).toBe(distinct);
        for (const msgId of msgIds) {
          expect(msgId).toMatch(/^[\x21-\x7e]+$/);
          expect(msgId.length).toBeLessThanOrEqual(Math.max(MAX_PLAIN_MSG_ID, 71));
          // a pack's message id (pack-<seq>-<n>-<hash>) is never an event's
          expect(msgId).not.toMatch(/^pack-\d+-\d+-[0-9a-f]{8}$/);
          expect(msgId.includes('.') || /^sha256-[0-9a-f]{64}$/.test(msgId)).toBe(true);
        }
      }),
    );
  });

  it('writes short printable identities in plain text and hashes the rest', () => {
    expect(natsMsgId('till-a', '0')).toBe('till-a.0');
    expect(natsMsgId('till-a', 'line\nbreak')).toMatch(/^sha256-[0-9a-f]{64}$/);
    expect(natsMsgId('till-a', 'x'.repeat(200))).toMatch(/^sha256-[0-9a-f]{64}$/);
  });

  it('keeps generated ids in the reserved namespace, apart from each other', () => {
    expect(idFromSequence('INGEST', 42)).toBe('~INGEST-42');
    expect(idFromMsgId('INGEST-42')).toBe('~m:INGEST-42');
    expect([idFromSequence('INGEST', 1), idFromMsgId('x')].every(isReservedId)).toBe(true);
    expect(isReservedId('INGEST-1')).toBe(false);
  });

  it('fingerprints content, not key order or the stamps of a copy', () => {
    const base = { type: 'sale', key: null, occurredAt: 1, data: { a: '1', b: { c: 2, d: 3 } } };
    expect(contentFingerprint({ ...base, data: { b: { d: 3, c: 2 }, a: '1' } })).toBe(contentFingerprint(base));
    const changed = [{ ...base, type: 'refund' }, { ...base, key: 'k' }, { ...base, occurredAt: 2 }, { ...base, data: { a: 1, b: { c: 2, d: 3 } } }];
    expect(new Set([base, ...changed].map(contentFingerprint)).size).toBe(5);
  });
});
