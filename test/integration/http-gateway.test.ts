import { request as httpRequest } from 'node:http';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type StoredMsg } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/core/config.ts';
import { ingestMsgId } from '../../src/core/identity.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createRegistry } from '../../src/core/metrics.ts';
import type { DlqRecord } from '../../src/nats/dlq.ts';
import { startHttpGateway, type HttpGateway, type Readiness } from '../../src/ingest/http/server.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { testConfig } from '../harness/config.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

const MAX_BODY = 2 * 1024 * 1024;
const MAX_EVENT = 1024;
const TOKEN = 's3cret-token';

let nats: TestNats;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let registry: Registry;
let gateway: HttpGateway;
let guarded: HttpGateway;
let readiness: Readiness = { ready: true };
const disposers: Array<() => Promise<unknown>> = [];

const logger = createLogger('http-gateway-test');
logger.level = 'silent';

const config = (http: Record<string, unknown> = {}): Config =>
  testConfig({ http: { port: 0, maxBodyBytes: MAX_BODY, ...http }, ingest: { maxEventBytes: MAX_EVENT } });

const now = (): string => new Date().toISOString();
const sale = (source: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  source,
  type: 'sale',
  occurredAt: now(),
  data: { amount: '129.90' },
  ...extra,
});

type IngestResponse = {
  accepted: Array<{ index: number; id: string; seq: number; duplicate?: true }>;
  rejected: Array<{ index: number; code: string; reason: string }>;
  failed?: Array<{ index: number; reason: string }>;
};

async function post(body: string, options: { headers?: Record<string, string>; query?: string; server?: HttpGateway } = {}): Promise<{ status: number; json: IngestResponse }> {
  const res = await fetch(`${(options.server ?? gateway).url}/v1/events${options.query ?? ''}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...options.headers },
    body,
  });
  return { status: res.status, json: (await res.json()) as IngestResponse };
}

/** Every message of a stream on subjects starting with `prefix`; the streams stay small in this file. */
async function messages(stream: string, prefix: string): Promise<StoredMsg[]> {
  const info = await jsm.streams.info(stream);
  const found: StoredMsg[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const msg = await jsm.streams.getMessage(stream, { seq });
    if (msg && msg.subject.startsWith(prefix)) found.push(msg);
  }
  return found;
}

const dlqRecords = async (source: string): Promise<DlqRecord[]> =>
  (await messages('DLQ', `dlq.ingest.${source}.`)).map((m) => m.json<DlqRecord>());

const rawOf = (record: DlqRecord): string => Buffer.from(record.raw, 'base64').toString('utf8');

beforeAll(async () => {
  nats = await startTestNats();
  disposers.push(() => nats.dispose());
  nc = await connect({ servers: nats.url });
  disposers.unshift(() => nc.close());
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  await ensureTopology(jsm, config());
  registry = createRegistry();
  gateway = await startHttpGateway({ config: config(), js, nc, logger, registry, ready: () => readiness });
  guarded = await startHttpGateway({ config: config({ token: TOKEN }), js, nc, logger, registry: createRegistry() });
  disposers.unshift(() => gateway.close(), () => guarded.close());
});

afterAll(async () => {
  for (const dispose of disposers) await dispose();
});

describe('POST /v1/events', () => {
  it('stores one object in INGEST on ingest.<source>.<type> with a Nats-Msg-Id of its identity and bytes, and answers 202 after the ack', async () => {
    const event = sale('store-1', { id: 's-1' });
    const { status, json } = await post(JSON.stringify(event));
    expect(status).toBe(202);
    expect(json.rejected).toEqual([]);
    expect(json.accepted).toEqual([{ index: 0, id: 's-1', seq: expect.any(Number) }]);
    const stored = await jsm.streams.getMessage('INGEST', { seq: json.accepted[0]!.seq });
    expect(stored?.subject).toBe('ingest.store-1.sale');
    expect(stored?.header.get('Nats-Msg-Id')).toBe(ingestMsgId('store-1', 's-1', Buffer.from(JSON.stringify(event))));
    expect(stored?.json()).toEqual(event);
  });

  it('reports the id the NATS gateway will derive (~INGEST-<seq>) for an event without one', async () => {
    const { status, json } = await post(JSON.stringify(sale('store-2')));
    expect(status).toBe(202);
    const [accepted] = json.accepted;
    expect(accepted?.id).toBe(`~INGEST-${accepted?.seq}`);
    const stored = await jsm.streams.getMessage('INGEST', { seq: accepted!.seq });
    expect(stored?.subject).toBe('ingest.store-2.sale');
    expect(stored?.header?.get('Nats-Msg-Id') ?? '').toBe('');
  });

  it('answers 400 for an array with bad items: good ones published, each bad one with its reason and in the DLQ', async () => {
    const good = [sale('store-3', { id: 'a-1' }), sale('store-3', { id: 'a-3' })];
    const noOccurredAt = { id: 'a-2', source: 'store-3', type: 'sale' };
    const body = [good[0], noOccurredAt, good[1], 42];
    const { status, json } = await post(JSON.stringify(body));
    expect(status).toBe(400);
    expect(json.accepted.map((a) => [a.index, a.id])).toEqual([[0, 'a-1'], [2, 'a-3']]);
    expect(json.rejected).toEqual([
      { index: 1, code: 'MISSING_OCCURRED_AT', reason: expect.stringContaining('occurredAt is required') },
      { index: 3, code: 'NOT_AN_OBJECT', reason: expect.stringContaining('must be a JSON object') },
    ]);
    const ingested = await messages('INGEST', 'ingest.store-3.');
    expect(ingested.map((m) => m.json<{ id: string }>().id)).toEqual(['a-1', 'a-3']);

    const dlq = await dlqRecords('store-3');
    expect(dlq).toHaveLength(1);
    expect(dlq[0]).toMatchObject({ code: 'MISSING_OCCURRED_AT', subject: 'ingest.store-3.sale', origin: { http: expect.any(String) } });
    expect(JSON.parse(rawOf(dlq[0]!))).toEqual(noOccurredAt);
    const notObject = (await dlqRecords('_')).find((r) => rawOf(r) === '42');
    expect(notObject?.code).toBe('NOT_AN_OBJECT');
  });

  it('takes NDJSON: good lines accepted, one reason per bad line, the raw line in the DLQ', async () => {
    const lines = [JSON.stringify(sale('store-4', { id: 'n-1' })), '{"id": "n-2", oops', '', JSON.stringify(sale('store-4', { id: 'n-3' }))];
    const { status, json } = await post(lines.join('\n'), { headers: { 'content-type': 'application/x-ndjson' }, query: '?source=store-4&type=sale' });
    expect(status).toBe(400);
    expect(json.accepted.map((a) => a.id)).toEqual(['n-1', 'n-3']);
    expect(json.rejected).toEqual([{ index: 1, code: 'INVALID_JSON', reason: expect.stringContaining('line 2 is not valid JSON') }]);
    const dlq = await dlqRecords('store-4');
    expect(dlq.map(rawOf)).toEqual(['{"id": "n-2", oops']);
  });

  it('detects NDJSON without its content type when the body is several lines but not one JSON value', async () => {
    const body = `${JSON.stringify(sale('store-5', { id: 'd-1' }))}\n${JSON.stringify(sale('store-5', { id: 'd-2' }))}\n`;
    const { status, json } = await post(body);
    expect(status).toBe(202);
    expect(json.accepted.map((a) => a.id)).toEqual(['d-1', 'd-2']);
  });

  it('rejects a body that is not JSON at all with one reason, and keeps it in the DLQ', async () => {
    const { status, json } = await post('{"id": "broken", ', { query: '?source=store-6&type=sale' });
    expect(status).toBe(400);
    expect(json.accepted).toEqual([]);
    expect(json.rejected).toEqual([{ index: 0, code: 'INVALID_JSON', reason: expect.stringContaining('not valid JSON') }]);
    expect((await dlqRecords('store-6')).map(rawOf)).toEqual(['{"id": "broken", ']);
  });

  it('answers 413 for a body over http.maxBodyBytes, declared or streamed', async () => {
    const big = JSON.stringify([sale('store-7', { data: { blob: 'x'.repeat(MAX_BODY) } })]);
    const declared = await post(big);
    expect(declared.status).toBe(413);
    expect(declared.json.rejected[0]?.code).toBe('TOO_LARGE');

    // chunked: no Content-Length, so the limit must hold while reading
    const streamed = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${gateway.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      const chunk = 'x'.repeat(64 * 1024);
      for (let sent = 0; sent <= MAX_BODY; sent += chunk.length) req.write(chunk);
      req.end();
    });
    expect(streamed).toBe(413);
    expect(await messages('INGEST', 'ingest.store-7.')).toEqual([]);
  });

  it('rejects an item over ingest.maxEventBytes with TOO_LARGE and keeps its bytes in the DLQ', async () => {
    const huge = sale('store-8', { id: 'big-1', data: { note: 'x'.repeat(MAX_EVENT) } });
    const { status, json } = await post(JSON.stringify([sale('store-8', { id: 'small-1' }), huge]));
    expect(status).toBe(400);
    expect(json.accepted.map((a) => a.id)).toEqual(['small-1']);
    expect(json.rejected).toEqual([{ index: 1, code: 'TOO_LARGE', reason: expect.stringContaining(`over the limit of ${MAX_EVENT}`) }]);
    const [record] = await dlqRecords('store-8');
    expect(JSON.parse(rawOf(record!))).toEqual(huge);
  });

  it('keeps the head of an input too big for one NATS message in the DLQ, saying so', async () => {
    const big = sale('store-9', { id: 'huge-1', data: { note: 'y'.repeat(1_200_000) } });
    const { status, json } = await post(JSON.stringify(big));
    expect(status).toBe(400);
    expect(json.rejected[0]?.code).toBe('TOO_LARGE');
    const [record] = await dlqRecords('store-9');
    expect(record?.reason).toMatch(/raw bytes cut to the first \d+ of \d+/);
    expect(rawOf(record!)).toMatch(/^\{"source":"store-9"/);
  });

  it('rejects items with no source or type anywhere, and uses ?source=&type= as defaults', async () => {
    const bare = { id: 'q-1', occurredAt: now() };
    const missing = await post(JSON.stringify(bare));
    expect(missing.status).toBe(400);
    expect(missing.json.rejected).toEqual([{ index: 0, code: 'INVALID_SUBJECT', reason: expect.stringContaining('no "source" field') }]);
    const noType = await post(JSON.stringify(bare), { query: '?source=store-10' });
    expect(noType.json.rejected[0]?.reason).toContain('no "type" field');

    const defaulted = await post(JSON.stringify(bare), { query: '?source=store-10&type=sale' });
    expect(defaulted.status).toBe(202);
    const stored = await jsm.streams.getMessage('INGEST', { seq: defaulted.json.accepted[0]!.seq });
    expect(stored?.subject).toBe('ingest.store-10.sale');
    expect(stored?.json()).toEqual(bare);

    const badDefault = await post(JSON.stringify(bare), { query: '?source=a.b&type=sale' });
    expect(badDefault.json.rejected[0]).toMatchObject({ code: 'INVALID_FIELD', reason: expect.stringContaining('one subject token') });
  });

  it('reports a re-posted id as a duplicate and stores it once', async () => {
    const event = JSON.stringify(sale('store-11', { id: 'dup-1' }));
    const first = await post(event);
    const second = await post(event);
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(first.json.accepted[0]?.duplicate).toBeUndefined();
    expect(second.json.accepted[0]).toEqual({ index: 0, id: 'dup-1', seq: first.json.accepted[0]!.seq, duplicate: true });
    expect(await messages('INGEST', 'ingest.store-11.')).toHaveLength(1);
  });

  it('stores the same id from two sources twice, and a different copy of an identity for the NATS gateway to judge', async () => {
    const a = sale('till-a', { id: '0' });
    const b = sale('till-b', { id: '0' });
    const changed = { ...a, data: { amount: '99.00' } };
    const { json } = await post(JSON.stringify([a, b, a, changed]));
    expect(json.accepted.map((x) => [x.index, x.duplicate ?? false])).toEqual([[0, false], [1, false], [2, true], [3, false]]);
    expect(await messages('INGEST', 'ingest.till-a.')).toHaveLength(2);
    expect(await messages('INGEST', 'ingest.till-b.')).toHaveLength(1);
  });

  it('refuses an id in the reserved namespace with RESERVED_ID and keeps it in the DLQ', async () => {
    const { status, json } = await post(JSON.stringify(sale('store-12', { id: '~INGEST-1' })));
    expect(status).toBe(400);
    expect(json.rejected).toEqual([{ index: 0, code: 'RESERVED_ID', reason: expect.stringContaining('~') }]);
    expect(await messages('INGEST', 'ingest.store-12.')).toHaveLength(0);
    const [dlq] = await messages('DLQ', 'dlq.ingest.store-12.');
    expect(dlq?.json<DlqRecord>().code).toBe('RESERVED_ID');
  });
});

/** A request exactly as given (target, header names), which fetch would normalise or refuse. */
function rawRequest(path: string, headers: Array<[string, string]>, body: Buffer | string): Promise<{ status: number; text: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const url = new URL(gateway.url);
    const bytes = Buffer.from(body);
    const req = httpRequest({ host: url.hostname, port: url.port, method: 'POST', path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), headers: res.headers }));
    });
    req.on('error', reject);
    // one by one: the request keeps them in a prototype-free map, so `__proto__` is sent as a name
    for (const [name, value] of [...headers, ['content-length', String(bytes.byteLength)]]) req.setHeader(name!, value!);
    req.end(bytes);
  });
}

describe('odd input over HTTP: 2xx or 4xx, never 5xx', () => {
  it('takes header names that are also object keys (constructor, __proto__), and keeps only allow-listed headers in the DLQ', async () => {
    const event = JSON.stringify(sale('odd-h', { id: 'h-1' }));
    const headers: Array<[string, string]> = [['content-type', 'application/json'], ['constructor', 'x'], ['__proto__', 'y'], ['hasOwnProperty', 'z'], ['traceparent', 't-1'], ['cookie', 'secret']];
    const good = await rawRequest('/v1/events', headers, event);
    expect(good.status, good.text).toBe(202);
    const bad = await rawRequest('/v1/events', headers, JSON.stringify({ id: 'h-2', source: 'odd-h', type: 'sale' }));
    expect(bad.status).toBe(400);
    const [record] = await dlqRecords('odd-h');
    expect(record?.headers).toEqual({ traceparent: ['t-1'], 'content-type': ['application/json'] });
  });

  it('answers 400 to a request target that is no path', async () => {
    expect((await rawRequest('//', [['content-type', 'application/json']], '{}')).status).toBe(400);
  });

  it('answers 400 to deep nesting outside data, invalid UTF-8, a newline in an id and a lone surrogate', async () => {
    const deep = `{"source":"odd-n","type":"sale","occurredAt":"${now()}","extra":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    const deepRes = await post(deep);
    expect([deepRes.status, deepRes.json.rejected[0]?.code]).toEqual([400, 'TOO_DEEP']);
    const arrayDeep = await post(`[${deep}]`);
    expect([arrayDeep.status, arrayDeep.json.rejected[0]?.code]).toEqual([400, 'TOO_DEEP']);
    const shallower = `{"source":"odd-n","type":"sale","occurredAt":"${now()}","extra":${'['.repeat(100)}${']'.repeat(100)}}`;
    const ndjsonDeep = await post(`${shallower}\n${JSON.stringify(sale('odd-n', { id: 'n-ok' }))}`, { headers: { 'content-type': 'application/x-ndjson' } });
    expect([ndjsonDeep.status, ndjsonDeep.json.rejected[0]?.code, ndjsonDeep.json.accepted.map((a) => a.id)]).toEqual([400, 'TOO_DEEP', ['n-ok']]);
    const utf8 = await rawRequest('/v1/events?source=odd-n&type=sale', [['content-type', 'application/json']], Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    expect(utf8.status).toBe(400);
    const newline = await post(JSON.stringify(sale('odd-n', { id: 'a\nb' })));
    expect(newline.json.rejected[0]?.code).toBe('CONTROL_CHARACTER');
    const lone = await post(`{"source":"odd-n","type":"sale","occurredAt":"${now()}","key":"\\ud800"}`);
    expect(lone.json.rejected[0]?.code).toBe('LONE_SURROGATE');
  });

  it('refuses a body of more items than http.maxItems with 413 before looking at any, filing nothing', async () => {
    const dlqBefore = (await jsm.streams.info('DLQ')).state.messages;
    const ingestBefore = (await jsm.streams.info('INGEST')).state.messages;
    const ones = '1\n'.repeat(MAX_BODY / 2 - 16);
    const started = performance.now();
    const res = await post(ones);
    expect(res.status).toBe(413);
    expect(res.json.rejected).toEqual([{ index: 0, code: 'TOO_MANY_ITEMS', reason: expect.stringContaining('over the limit of 10000') }]);
    const array = await post(JSON.stringify(Array.from({ length: 10_001 }, () => 1)));
    expect([array.status, array.json.rejected[0]?.code]).toEqual([413, 'TOO_MANY_ITEMS']);
    const ndjson = await post('{}\n'.repeat(10_001), { headers: { 'content-type': 'application/x-ndjson' } });
    expect(ndjson.status).toBe(413);
    expect(performance.now() - started).toBeLessThan(60_000);
    expect((await jsm.streams.info('DLQ')).state.messages).toBe(dlqBefore);
    expect((await jsm.streams.info('INGEST')).state.messages).toBe(ingestBefore);
  });
});

describe('bearer token', () => {
  const body = (): string => JSON.stringify(sale('store-12'));

  it('answers 401 without a token or with a wrong one, and 202 with the right one', async () => {
    expect((await post(body(), { server: guarded })).status).toBe(401);
    expect((await post(body(), { server: guarded, headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await post(body(), { server: guarded, headers: { authorization: TOKEN } })).status).toBe(401);
    expect((await post(body(), { server: guarded, headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(202);
    expect(await messages('INGEST', 'ingest.store-12.')).toHaveLength(1);
  });

  it('leaves the probes open', async () => {
    expect((await fetch(`${guarded.url}/healthz`)).status).toBe(200);
  });
});

describe('probes and metrics', () => {
  it('/healthz answers 200 while the process is up', async () => {
    const res = await fetch(`${gateway.url}/healthz`);
    expect(res.status).toBe(200);
  });

  it('/readyz follows the readiness callback', async () => {
    readiness = { ready: true };
    expect((await fetch(`${gateway.url}/readyz`)).status).toBe(200);
    readiness = { ready: false, reason: 'ClickHouse unreachable' };
    const res = await fetch(`${gateway.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'not ready', reason: 'ClickHouse unreachable' });
    readiness = { ready: true };
  });

  it('/readyz answers 503 when NATS is not connected', async () => {
    const lost = await connect({ servers: nats.url });
    const server = await startHttpGateway({ config: config(), js: jetstream(lost), nc: lost, logger, registry: createRegistry(), ready: () => ({ ready: true }) });
    try {
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      await lost.close();
      const res = await fetch(`${server.url}/readyz`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { reason: string }).reason).toContain('NATS is not connected');
    } finally {
      await server.close();
    }
  });

  it('/metrics serves the ingest counters after requests', async () => {
    const res = await fetch(`${gateway.url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/tidemark_ingest_events_total\{gateway="http",outcome="accepted"\} [1-9]/);
    // the re-posted dup-1 and the re-sent copy of till-a 0
    expect(text).toMatch(/tidemark_ingest_events_total\{gateway="http",outcome="duplicate"\} 2/);
    expect(text).toMatch(/tidemark_ingest_events_total\{gateway="http",outcome="rejected"\} [1-9]/);
    expect(text).toMatch(/tidemark_ingest_rejections_total\{code="TOO_LARGE"\} [1-9]/);
    expect(text).toMatch(/tidemark_ingest_batch_seconds_count\{gateway="http"\} [1-9]/);
    expect(text).toContain('process_cpu_seconds_total');
  });

  it('answers 404 for an unknown path and 405 for a wrong method', async () => {
    expect((await fetch(`${gateway.url}/nope`)).status).toBe(404);
    const res = await fetch(`${gateway.url}/v1/events`);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
  });
});
