import { createHash } from 'node:crypto';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_COUNT_HEADER } from '../../src/core/envelope.ts';
import { natsMsgId } from '../../src/core/identity.ts';
import { metricsRegistry } from '../../src/core/metrics.ts';
import type { DlqRecord } from '../../src/nats/dlq.ts';
import type { NatsGateway } from '../../src/ingest/nats-gateway.ts';
import { testConfig } from '../harness/config.ts';
import { startTestIngest, type TestIngest } from '../harness/ingest.ts';
import { json, readAll, unpack, waitFor } from '../harness/streams.ts';

let ingest: TestIngest;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let gateway: NatsGateway;
const config = testConfig({ ingest: { maxEventBytes: 2048 } });
const enc = (value: unknown) => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));

beforeAll(async () => {
  ingest = await startTestIngest(config);
  ({ nc, js, jsm, gateway } = ingest);
});

afterAll(async () => {
  await ingest?.dispose();
});

/** Every raw message published so far has been forwarded and acked by the gateway. */
async function drained(): Promise<void> {
  await waitFor(async () => {
    const [stream, consumer] = await Promise.all([jsm.streams.info('INGEST'), jsm.consumers.info('INGEST', 'gateway')]);
    return consumer.ack_floor.stream_seq === stream.state.last_seq;
  }, 60_000, 'the gateway to ack every raw message');
}

const eventsFor = async (source: string) => unpack((await readAll(js, jsm, 'EVENTS')).filter((m) => m.subject.startsWith(`events.${source}.`)));

describe('NATS ingest gateway', () => {
  it('stamps core publishes (no headers, as `nats pub` sends them) with the JetStream store time', async () => {
    const occurredAt = new Date(Date.now() - 3_600_000).toISOString().replace('Z', '+00:00');
    nc.publish('ingest.store-17.sale', enc({ id: 's-1', occurredAt, data: { amount: '129.90' } }));
    nc.publish('ingest.store-17.sale', enc({ occurredAt: Date.now() - 1000, data: { amount: 5 } }));
    await nc.flush();
    const events = await waitFor(async () => {
      const m = await eventsFor('store-17');
      return m.length === 2 && m;
    });
    const raw = await readAll(js, jsm, 'INGEST');
    const first = events[0]!.event;
    expect(events[0]!.msg.subject).toBe('events.store-17.sale');
    expect(first).toMatchObject({ id: 's-1', source: 'store-17', type: 'sale', occurredAt: Date.parse(occurredAt), data: { amount: '129.90' } });
    const rawFirst = raw.find((m) => m.seq === first.seq)!;
    expect(first.receivedAt).toBe(Number(rawFirst.timestampNanos / 1_000_000n));
    const second = events[1]!.event;
    expect(second.id).toBe(`~INGEST-${second.seq}`);
    // events that arrive together travel in one message that says how many it holds; a lone one is the event itself, under its (source, id)
    for (const msg of new Set(events.map((e) => e.msg))) {
      const inside = events.filter((e) => e.msg === msg).map((e) => e.event);
      if (inside.length === 1) expect(msg.headers?.get('Nats-Msg-Id')).toBe(natsMsgId(inside[0]!.source, inside[0]!.id));
      else expect(msg.headers?.get(EVENT_COUNT_HEADER)).toBe(String(inside.length));
    }
  });

  it('turns copies of one (source, id) into one event, by body id and by Nats-Msg-Id', async () => {
    const occurredAt = Date.now() - 10;
    for (let i = 0; i < 3; i++) nc.publish('ingest.dup.sale', enc({ id: 'dup-1', occurredAt, data: { n: 0 } }));
    const h = headers();
    h.set('Nats-Msg-Id', 'hdr-7');
    for (let i = 0; i < 2; i++) nc.publish('ingest.dup.sale', enc({ occurredAt }), { headers: h });
    nc.publish('ingest.dup.sale', enc({ id: 'dup-2', occurredAt }));
    await nc.flush();
    await drained();
    const events = (await eventsFor('dup')).map((e) => e.event);
    expect(events.map((e) => e.id).sort()).toEqual(['dup-1', 'dup-2', '~m:hdr-7']);
    const before = gateway.stats.duplicates;
    // a copy that comes after its original was stored (another batch) is dropped too, whatever its key order
    nc.publish('ingest.dup.sale', enc(`{"data":{"n":0},"occurredAt":${occurredAt},"id":"dup-1"}`));
    await nc.flush();
    await drained();
    expect((await eventsFor('dup')).map((e) => e.event.id).sort()).toEqual(['dup-1', 'dup-2', '~m:hdr-7']);
    // two copies of dup-1 so far (INGEST itself dropped the second hdr-7, by its Nats-Msg-Id), now a third
    expect([before, gateway.stats.duplicates]).toEqual([2, 3]);
  });

  it('counts the same id from two sources twice: identity is (source, id)', async () => {
    const occurredAt = Date.now() - 10;
    for (let i = 0; i < 5; i++) {
      nc.publish('ingest.till-a.sale', enc({ id: String(i), occurredAt, data: { amount: '1.00' } }));
      nc.publish('ingest.till-b.sale', enc({ id: String(i), occurredAt, data: { amount: '1.00' } }));
    }
    await nc.flush();
    await drained();
    const ids = async (source: string) => (await eventsFor(source)).map((e) => e.event.id).sort();
    expect(await ids('till-a')).toEqual(['0', '1', '2', '3', '4']);
    expect(await ids('till-b')).toEqual(['0', '1', '2', '3', '4']);
  });

  it('keeps the first copy of an identity and files a different later one in the DLQ as DUPLICATE_ID_CONFLICT', async () => {
    const occurredAt = Date.now() - 10;
    const first = enc({ id: 'c-1', occurredAt, data: { amount: '5.00' } });
    const sameBatch = enc({ id: 'c-1', occurredAt, data: { amount: '6.00' } });
    nc.publish('ingest.conflict.sale', first);
    nc.publish('ingest.conflict.sale', sameBatch);
    await nc.flush();
    await drained();
    // later, once the first is stored: another copy with different content, and an exact one
    const later = enc({ id: 'c-1', occurredAt: occurredAt - 1, data: { amount: '5.00' } });
    nc.publish('ingest.conflict.sale', later);
    nc.publish('ingest.conflict.sale', first);
    await nc.flush();
    await drained();
    const events = (await eventsFor('conflict')).map((e) => e.event);
    expect(events.map((e) => [e.id, e.data])).toEqual([['c-1', { amount: '5.00' }]]);
    const dlq = (await readAll(js, jsm, 'DLQ')).map((m) => json<DlqRecord>(m)).filter((r) => r.subject === 'ingest.conflict.sale');
    expect(dlq.map((r) => r.code)).toEqual(['DUPLICATE_ID_CONFLICT', 'DUPLICATE_ID_CONFLICT']);
    expect(dlq.map((r) => Buffer.from(r.raw, 'base64'))).toEqual([Buffer.from(sameBatch), Buffer.from(later)]);
    expect(dlq[0]!.reason).toContain('"conflict"');
    expect(await metricsRegistry.getSingleMetricAsString('tidemark_ingest_rejections_total')).toMatch(/code="DUPLICATE_ID_CONFLICT"\} 2/);
  });

  it('sends every kind of bad input to the DLQ with the raw bytes, subject, headers and reason', async () => {
    const now = Date.now();
    const cases: Array<[string, string, Uint8Array]> = [
      ['INVALID_JSON', 'ingest.bad.sale', enc('{"occurredAt": ')],
      ['NOT_AN_OBJECT', 'ingest.bad.sale', enc('[1,2,3]')],
      ['MISSING_OCCURRED_AT', 'ingest.bad.sale', enc({ id: 'b-1' })],
      ['INVALID_OCCURRED_AT', 'ingest.bad.sale', enc({ occurredAt: 'yesterday' })],
      ['FUTURE_OCCURRED_AT', 'ingest.bad.sale', enc({ occurredAt: now + 3_600_000 })],
      ['EXPIRED_OCCURRED_AT', 'ingest.bad.sale', enc({ occurredAt: now - 500 * 86_400_000 })],
      ['INEXACT_NUMBER', 'ingest.bad.sale', enc(`{"occurredAt": ${now}, "data": {"amount": 1234567890.123456789}}`)],
      ['TOO_LARGE', 'ingest.bad.sale', enc({ occurredAt: now, data: { pad: 'x'.repeat(4096) } })],
      ['INVALID_SUBJECT', 'ingest.bad', enc({ occurredAt: now })],
      ['INVALID_FIELD', 'ingest.bad.sale', enc({ occurredAt: now, data: 'nope' })],
    ];
    const h = headers();
    h.set('traceparent', 'trace-1');
    h.set('X-Secret-Stuff', 'not kept');
    for (const [, subject, raw] of cases) nc.publish(subject, raw, { headers: h });
    await nc.flush();
    const dlq = await waitFor(async () => {
      const all = (await readAll(js, jsm, 'DLQ')).map((m) => ({ msg: m, record: json<DlqRecord>(m) }));
      const mine = all.filter((d) => d.record.subject.startsWith('ingest.bad'));
      return mine.length === cases.length && mine;
    });
    dlq.forEach(({ msg, record }, i) => {
      const [code, subject, raw] = cases[i]!;
      expect(record.code).toBe(code);
      expect(record.reason).toMatch(/\S{3,}/);
      expect(record.subject).toBe(subject);
      expect(msg.subject).toBe(`dlq.${subject}`);
      expect(msg.headers?.get('Tidemark-Reject-Code')).toBe(code);
      expect(record.headers.traceparent).toEqual(['trace-1']);
      expect(record.headers['X-Secret-Stuff']).toBeUndefined();
      expect(Buffer.from(record.raw, 'base64')).toEqual(Buffer.from(raw));
    });
    expect(await eventsFor('bad')).toHaveLength(0);
    expect(gateway.stats.rejected).toBeGreaterThanOrEqual(cases.length);
  });

  it('files ids with a newline, lone surrogates, over-long tokens and huge inputs in the DLQ, and keeps flowing', async () => {
    const now = Date.now();
    const long = 'x'.repeat(3000);
    const poison: Array<[string, string, Uint8Array]> = [
      // valid JSON, but the id would become a Nats-Msg-Id header with a newline, which nats.js refuses to build
      ['CONTROL_CHARACTER', 'ingest.odd.sale', enc('{"id":"a\\nb","occurredAt":' + now + '}')],
      ['CONTROL_CHARACTER', 'ingest.odd.sale', enc({ id: 'nul\u0000', occurredAt: now })],
      ['CONTROL_CHARACTER', 'ingest.odd.sale', enc({ key: 'k\r\n', occurredAt: now })],
      ['LONE_SURROGATE', 'ingest.odd.sale', enc('{"key":"\\ud800","occurredAt":' + now + '}')],
      ['LONE_SURROGATE', 'ingest.odd.sale', enc('{"occurredAt":' + now + ',"data":{"note":"\\udc00x"}}')],
      ['LONE_SURROGATE', 'ingest.odd.sale', enc('{"occurredAt":' + now + ',"data":{"\\ud83d":1}}')],
      ['TOO_LONG', 'ingest.odd.sale', enc({ id: long.slice(0, 300), occurredAt: now })],
      ['TOO_LONG', 'ingest.odd.sale', enc({ source: long.slice(0, 200), occurredAt: now })],
      ['TOO_LONG', `ingest.odd.${long}`, enc({ occurredAt: now })],
      ['TOO_DEEP', 'ingest.odd.sale', enc(`{"occurredAt":${now},"data":${'{"a":'.repeat(40)}1${'}'.repeat(40)}}`)],
    ];
    for (const [, subject, raw] of poison) nc.publish(subject, raw);
    // good events published after the poison still arrive
    for (let i = 0; i < 5; i++) nc.publish('ingest.odd.sale', enc({ id: `after-${i}`, occurredAt: now, key: 'astral-\u{1F600}' }));
    await nc.flush();
    await drained();
    const dlq = (await readAll(js, jsm, 'DLQ')).map((m) => json<DlqRecord>(m)).filter((r) => r.subject.startsWith('ingest.odd'));
    expect(dlq.map((r) => r.code)).toEqual(poison.map(([code]) => code));
    for (const record of dlq) expect(record.reason).toMatch(/\S{3,}/);
    const events = (await eventsFor('odd')).map((e) => e.event);
    expect(events.map((e) => e.id)).toEqual([0, 1, 2, 3, 4].map((i) => `after-${i}`));
    expect(events[0]!.key).toBe('astral-\u{1F600}');
  });

  it('keeps a DLQ record of an input near max_payload under max_payload: a head of the bytes, the size and a SHA-256', async () => {
    const big = new Uint8Array(900 * 1024).fill(0x41);
    nc.publish('ingest.huge.sale', big);
    await nc.flush();
    const [msg] = await waitFor(async () => {
      const found = (await readAll(js, jsm, 'DLQ')).filter((m) => m.subject === 'dlq.ingest.huge.sale');
      return found.length === 1 && found;
    });
    const record = json<DlqRecord>(msg!);
    expect(msg!.data.byteLength).toBeLessThan(nc.info!.max_payload);
    expect(record).toMatchObject({ code: 'TOO_LARGE', rawBytes: big.byteLength, rawTruncated: true });
    expect(record.rawSha256).toBe(createHash('sha256').update(big).digest('hex'));
    expect(Buffer.from(record.raw, 'base64')).toEqual(Buffer.from(big.subarray(0, Buffer.from(record.raw, 'base64').byteLength)));
  });
});
