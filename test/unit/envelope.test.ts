import fc from 'fast-check';
import { headers } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { parseRawEvent, subjectParts, validateEventBody, type RawMeta } from '../../src/core/envelope.ts';

const NOW = Date.parse('2026-11-21T00:00:00Z');
const limits = { maxEventBytes: 4096, maxFutureSkew: 5 * 60_000, retention: 30 * 86_400_000 };
const meta = (over: Partial<RawMeta> = {}): RawMeta => ({ subject: 'ingest.store-17.sale', stream: 'INGEST', seq: 42, receivedAt: NOW, ...over });
const bytes = (value: unknown) => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));

describe('envelope', () => {
  it('takes source and type from the subject and stamps receivedAt', () => {
    const result = parseRawEvent(bytes({ id: 's-1', occurredAt: '2026-11-20T13:05:00+08:00', data: { amount: '129.90' } }), meta(), limits);
    expect(result).toEqual({
      ok: true,
      event: { id: 's-1', type: 'sale', source: 'store-17', key: null, occurredAt: Date.parse('2026-11-20T05:05:00Z'), receivedAt: NOW, data: { amount: '129.90' }, seq: 42 },
    });
  });

  it('falls back to Nats-Msg-Id, then to the stream sequence for the id, both in the reserved namespace', () => {
    const body = bytes({ occurredAt: NOW - 1000 });
    const withHeader = parseRawEvent(body, meta({ msgId: 'hdr-9' }), limits);
    const bare = parseRawEvent(body, meta(), limits);
    expect(withHeader.ok && withHeader.event.id).toBe('~m:hdr-9');
    expect(bare.ok && bare.event.id).toBe('~INGEST-42');
  });

  it('refuses a client id in the reserved namespace with RESERVED_ID, so no client can pre-empt a generated id', () => {
    for (const id of ['~INGEST-43', '~m:hdr-9', '~']) {
      const result = parseRawEvent(bytes({ id, occurredAt: NOW - 1000 }), meta(), limits);
      expect(result.ok ? 'accepted' : result.rejection.code).toBe('RESERVED_ID');
    }
    const plain = parseRawEvent(bytes({ id: 'INGEST-43', occurredAt: NOW - 1000 }), meta(), limits);
    expect(plain.ok && plain.event.id).toBe('INGEST-43');
  });

  it('lets the body name source, type and key, and keeps deeper subjects as a dotted type', () => {
    const r = parseRawEvent(bytes({ source: 'lab-2', type: 'result', key: 'acct-1', occurredAt: NOW }), meta({ subject: 'ingest.x.y' }), limits);
    expect(r.ok && [r.event.source, r.event.type, r.event.key]).toEqual(['lab-2', 'result', 'acct-1']);
    expect(subjectParts('ingest.store-1.sale.refund', 'ingest')).toEqual({ source: 'store-1', type: 'sale.refund' });
  });

  it('accepts epoch milliseconds as a number or a digit string', () => {
    const a = parseRawEvent(bytes({ occurredAt: NOW - 5 }), meta(), limits);
    const b = parseRawEvent(bytes({ occurredAt: String(NOW - 5) }), meta(), limits);
    expect(a.ok && a.event.occurredAt).toBe(NOW - 5);
    expect(b.ok && b.event.occurredAt).toBe(NOW - 5);
  });

  it.each([
    ['TOO_LARGE', bytes({ occurredAt: NOW, data: { pad: 'x'.repeat(5000) } })],
    ['INVALID_JSON', bytes('{"occurredAt": ')],
    ['INVALID_JSON', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])],
    ['NOT_AN_OBJECT', bytes([1, 2])],
    ['MISSING_OCCURRED_AT', bytes({ id: 'x' })],
    ['INVALID_OCCURRED_AT', bytes({ occurredAt: '2026-11-20 13:05' })],
    ['INVALID_OCCURRED_AT', bytes({ occurredAt: '2026-11-20T13:05:00' })],
    ['INVALID_OCCURRED_AT', bytes({ occurredAt: true })],
    ['FUTURE_OCCURRED_AT', bytes({ occurredAt: NOW + 6 * 60_000 })],
    ['EXPIRED_OCCURRED_AT', bytes({ occurredAt: NOW - 31 * 86_400_000 })],
    ['INEXACT_NUMBER', bytes(`{"occurredAt": ${NOW}, "data": {"amount": 0.12345678901234567}}`)],
    ['INVALID_FIELD', bytes({ occurredAt: NOW, data: [1] })],
    ['INVALID_FIELD', bytes({ occurredAt: NOW, source: 'a.b' })],
    ['INVALID_FIELD', bytes({ occurredAt: NOW, id: { x: 1 } })],
    ['CONTROL_CHARACTER', bytes({ occurredAt: NOW, id: 'a\nb' })],
    ['CONTROL_CHARACTER', bytes({ occurredAt: NOW, key: 'k\u0085' })],
    ['CONTROL_CHARACTER', bytes({ occurredAt: NOW, type: 'sa\u0000le' })],
    ['LONE_SURROGATE', bytes(`{"occurredAt": ${NOW}, "key": "\\ud800"}`)],
    ['LONE_SURROGATE', bytes(`{"occurredAt": ${NOW}, "data": {"a": ["ok", "\\udfff"]}}`)],
    ['LONE_SURROGATE', bytes(`{"occurredAt": ${NOW}, "data": {"\\ud800": 1}}`)],
    ['TOO_LONG', bytes({ occurredAt: NOW, id: 'é'.repeat(129) })],
    ['TOO_LONG', bytes({ occurredAt: NOW, key: 'k'.repeat(513) })],
    ['TOO_LONG', bytes({ occurredAt: NOW, type: 'a.'.repeat(64) + 'b' })],
    ['TOO_LONG', bytes({ occurredAt: NOW, data: { ['k'.repeat(257)]: 1 } })],
    ['TOO_DEEP', bytes(`{"occurredAt": ${NOW}, "data": {"a": ${'['.repeat(40)}${']'.repeat(40)}}}`)],
  ])('rejects %s with a reason', (code, raw) => {
    const result = parseRawEvent(raw, meta(), limits);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.rejection.code).toBe(code);
      expect(result.rejection.reason.length).toBeGreaterThan(10);
    }
  });

  it('rejects a subject without a type when the body has none', () => {
    const r = parseRawEvent(bytes({ occurredAt: NOW }), meta({ subject: 'ingest.store-1' }), limits);
    expect(!r.ok && r.rejection.code).toBe('INVALID_SUBJECT');
  });

  it('never throws on arbitrary bytes, and every rejection carries a code and a reason', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (raw) => {
        const result = parseRawEvent(raw, meta(), limits);
        if (!result.ok) expect(result.rejection.reason).toMatch(/\S/);
      }),
      { seed: 1, numRuns: 2000 },
    );
  });

  it('never throws on arbitrary JSON values, and accepts exactly the well-formed ones', () => {
    const field = fc.oneof(fc.constant(undefined), fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.json().map((j) => JSON.parse(j) as unknown));
    const body = fc.record({ id: field, type: field, source: field, key: field, occurredAt: fc.oneof(field, fc.integer({ min: NOW - 60_000, max: NOW })), data: fc.oneof(field, fc.dictionary(fc.string(), fc.jsonValue())) }, { requiredKeys: [] });
    fc.assert(
      fc.property(fc.oneof(body, fc.jsonValue()), (value) => {
        const result = validateEventBody(value, meta(), limits);
        if (result.ok) {
          expect(Number.isSafeInteger(result.event.occurredAt)).toBe(true);
          expect(result.event.source).toMatch(/^[^.*>\s]+$/);
          expect(typeof result.event.data).toBe('object');
        } else {
          expect(result.rejection.reason).toMatch(/\S/);
        }
      }),
      { seed: 2, numRuns: 3000 },
    );
  });

  it('accepts only what every sink and subject can carry: well-formed, no controls, within the byte limits', () => {
    const odd = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.string({ unit: fc.constantFrom('a', '.', '\n', '\r', '\u0000', '\u0085', '\ud800', '\udc00', '\u{1F600}', 'é'), maxLength: 12 }),
      fc.string({ unit: fc.constantFrom('a', 'é', '\u{1F600}'), minLength: 60, maxLength: 400 }),
    );
    const body = fc.record({ id: odd, type: odd, source: odd, key: odd, occurredAt: fc.constant(NOW), data: fc.dictionary(odd, fc.oneof(odd, fc.integer())) }, { requiredKeys: ['occurredAt'] });
    const wellFormed = (s: string) => Buffer.from(s, 'utf8').toString('utf8') === s;
    const clean = (s: string, limit: number) => wellFormed(s) && !/[\x00-\x1f\x7f-\x9f]/.test(s) && Buffer.byteLength(s) <= limit;
    let accepted = 0;
    fc.assert(
      fc.property(body, (value) => {
        const result = validateEventBody(value, meta(), limits);
        if (!result.ok) return;
        accepted++;
        const { event } = result;
        expect(clean(event.id, 256) && clean(event.source, 128) && clean(event.type, 128) && clean(event.key ?? '', 512)).toBe(true);
        for (const k of Object.keys(event.data)) expect(wellFormed(k) && Buffer.byteLength(k) <= 256).toBe(true);
        // what JSON.stringify writes for a lone surrogate is exactly what ClickHouse refuses
        expect(JSON.stringify(event)).not.toMatch(/\\ud[89a-f][0-9a-f]{2}/i);
        expect(() => headers().set('Nats-Msg-Id', event.id)).not.toThrow();
      }),
      { seed: 3, numRuns: 3000 },
    );
    expect(accepted).toBeGreaterThan(50);
  });
});
