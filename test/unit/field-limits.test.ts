import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hasLoneSurrogate, nestingOver, preview } from '../../src/core/field-limits.ts';
import { dlqRecord, dlqSubject, keptHeaders } from '../../src/nats/dlq.ts';
import { groupToken } from '../../src/core/group-token.ts';

/** Independent oracle: UTF-8 round trip changes a string exactly when it holds a lone surrogate. */
const wellFormed = (s: string): boolean => Buffer.from(s, 'utf8').toString('utf8') === s;

describe('field limits', () => {
  it('finds lone surrogates exactly where a UTF-8 round trip would change the string', () => {
    const unit = fc.constantFrom('a', '\ud800', '\udbff', '\udc00', '\udfff', '\u{1F600}', 'é', '\u0000');
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 12 }), (s) => {
        expect(hasLoneSurrogate(s)).toBe(!wellFormed(s));
        expect(wellFormed(preview(s))).toBe(true);
      }),
      { seed: 4, numRuns: 3000 },
    );
  });

  it('measures nesting without recursion, even 100,000 levels deep', () => {
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
    expect(nestingOver(deep, 64)).toBe(true);
    expect(nestingOver({ a: [{ b: 1 }] }, 3)).toBe(false);
    expect(nestingOver({ a: [{ b: {} }] }, 3)).toBe(true);
    expect(nestingOver('text', 0)).toBe(false);
  });

  it('keeps short group keys as they always were and names long ones by a hash', () => {
    expect(groupToken('store-9')).toBe(`g${Buffer.from('store-9').toString('base64url')}`);
    const long = 'x'.repeat(10_000);
    expect(groupToken(long)).toBe(`h${createHash('sha256').update(long).digest('base64url')}`);
    fc.assert(
      fc.property(fc.string({ maxLength: 600 }), (key) => {
        const token = groupToken(key);
        expect(token.length).toBeLessThanOrEqual(173);
        expect(token).toMatch(/^[gh][A-Za-z0-9_-]*$/);
      }),
      { seed: 5, numRuns: 500 },
    );
  });
});

describe('DLQ records', () => {
  const origin = { stream: 'INGEST', seq: 1 };
  const rejection = { code: 'TOO_LARGE' as const, reason: 'too big' };

  it('never exceed max_payload: a head of the bytes, the size and a SHA-256 of the whole', () => {
    for (const size of [10, 100_000, 760_000, 2_000_000]) {
      const raw = new Uint8Array(size).fill(7);
      const record = dlqRecord(rejection, raw, 'ingest.a.b', { traceparent: ['t'] }, origin, 0, 1024 * 1024);
      expect(Buffer.byteLength(JSON.stringify(record))).toBeLessThan(1024 * 1024 - 4096);
      expect(record.rawBytes).toBe(size);
      const head = Buffer.from(record.raw, 'base64');
      expect(Buffer.from(raw.subarray(0, head.byteLength)).equals(head)).toBe(true);
      if (head.byteLength < size) expect(record.rawSha256).toBe(createHash('sha256').update(raw).digest('hex'));
      else expect(record.rawTruncated).toBeUndefined();
    }
  });

  it('keep only allow-listed headers, bounded, whatever their names', () => {
    const kept = keptHeaders([
      ['__proto__', ['x']],
      ['constructor', ['y']],
      ['Authorization', ['Bearer secret']],
      ['traceparent', ['a'.repeat(10_000), 'b', 'c', 'd', 'e']],
      ['User-Agent', ['curl']],
    ]);
    expect(Object.keys(kept).sort()).toEqual(['User-Agent', 'traceparent']);
    expect(kept.traceparent!.map((v) => v.length)).toEqual([256, 1, 1, 1]);
  });

  it('go to a subject nats-server accepts, however long the original', () => {
    expect(dlqSubject('ingest.a.b')).toBe('dlq.ingest.a.b');
    expect(dlqSubject(`ingest.a.${'x'.repeat(5000)}`)).toBe('dlq._.long');
  });
});
