import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/core/metrics.ts';
import type { DlqRecord } from '../../src/nats/dlq.ts';
import { startMonitor, type Monitor } from '../../src/monitor/monitor.ts';
import { MONITOR_BUCKET } from '../../src/monitor/state.ts';
import { testConfig } from '../harness/config.ts';
import { useTestPipeline } from '../harness/pipeline.ts';
import { kvKeys, readAll, waitFor } from '../harness/streams.ts';
import { startSagaRole, type SagaRole } from '../../src/saga/role.ts';
import { SAGA_BUCKET, triggerSubject } from '../../src/saga/subjects.ts';
import { orderSaga, startServices, type Services } from '../support/saga.ts';

/**
 * The invariant of SPEC §3 on the wire: whatever producers send, over NATS or HTTP,
 * every raw message ends exactly once, as a row in `events` or a DLQ record, and no
 * consumer keeps anything pending. Real nats-server, real chDB, the real roles.
 */

let monitor: Monitor;
let sagas: SagaRole;
let services: Services;
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
const enc = new TextEncoder();
const monitorRegistry = createRegistry();

const pipeline = useTestPipeline((database) => testConfig({
  clickhouse: { database },
  http: { port: 0 },
  reports: [{ name: 'revenue', types: ['sale'], timeZone: 'UTC', groupBy: ['source', 'data.region'], measures: { orders: { fn: 'count' } }, coalesce: '100ms' }],
  slas: [{ name: 'late', source: '*', type: '*', maxDelay: '1h', expect: { every: '1h' } }],
  monitor: { tick: '100ms', grace: '1s', stats: { every: '1s' }, maxSourcesPerSla: 20 },
  processor: { linger: 20 },
  ingest: { linger: 10 },
}), { logger, revisorIntervalMs: 50 });

beforeAll(async () => {
  const { config, js, nc, jsm, ch } = pipeline;
  monitor = await startMonitor({ config, js, clickhouse: ch.client, logger, registry: monitorRegistry });
  sagas = await startSagaRole({ config, nc, js, jsm, logger, definitions: [orderSaga()] });
  services = await startServices(js, jsm);
}, 60_000);

afterAll(async () => {
  await services?.stop();
  await sagas?.stop();
  await monitor?.stop();
});

const lastSeq = async (stream: string): Promise<number> => (await pipeline.jsm.streams.info(stream)).state.last_seq;

/** DLQ records stored after sequence `after`, with their message ids. */
async function dlqSince(after: number): Promise<Array<{ msgId: string; record: DlqRecord }>> {
  const last = await lastSeq('DLQ');
  const out: Array<{ msgId: string; record: DlqRecord }> = [];
  for (let seq = after + 1; seq <= last; seq++) {
    const msg = await pipeline.jsm.streams.getMessage('DLQ', { seq });
    if (msg) out.push({ msgId: msg.header.get('Nats-Msg-Id'), record: msg.json<DlqRecord>() });
  }
  return out;
}

async function storedSeqs(from: number, to: number): Promise<number[]> {
  const result = await pipeline.ch.client.query({ query: `SELECT seq FROM ${pipeline.ch.db}.events FINAL WHERE seq BETWEEN {from:UInt64} AND {to:UInt64}`, query_params: { from, to }, format: 'JSONEachRow' });
  return (await result.json<{ seq: string | number }>()).map((r) => Number(r.seq));
}

async function storedIds(ids: string[]): Promise<Set<string>> {
  const result = await pipeline.ch.client.query({ query: `SELECT id FROM ${pipeline.ch.db}.events FINAL WHERE id IN {ids:Array(String)}`, query_params: { ids }, format: 'JSONEachRow' });
  return new Set((await result.json<{ id: string }>()).map((r) => r.id));
}

/** Every durable on EVENTS has nothing left to deliver and nothing waiting for an ack; the gateway's ack floor is INGEST's end. */
async function drained(): Promise<boolean> {
  const [ingestLast, gateway, ...readers] = await Promise.all([
    lastSeq('INGEST'),
    pipeline.jsm.consumers.info('INGEST', 'gateway'),
    pipeline.jsm.consumers.info('EVENTS', 'processor'),
    pipeline.jsm.consumers.info('EVENTS', 'monitor'),
  ]);
  return gateway.ack_floor.stream_seq === ingestLast && gateway.num_pending === 0 && readers.every((c) => c.num_pending === 0 && c.num_ack_pending === 0);
}

type HttpAnswer = { status: number; requestId: string; accepted: Array<{ index: number }>; rejected: Array<{ index: number; code: string }> };

/** A POST exactly as given: header names like `__proto__` are set one by one (fetch would refuse or fold them). */
function post(body: Uint8Array, headers: Array<[string, string]>, query = ''): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const url = new URL(pipeline.http.url);
    const req = httpRequest({ host: url.hostname, port: url.port, method: 'POST', path: `/v1/events${query}` }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => {
        const text = Buffer.concat(chunks).toString();
        const json = (text.startsWith('{') ? JSON.parse(text) : {}) as Partial<HttpAnswer>;
        resolve({ status: res.statusCode ?? 0, requestId: String(res.headers['x-request-id']), accepted: json.accepted ?? [], rejected: json.rejected ?? [] });
      });
    });
    req.on('error', reject);
    for (const [name, value] of [...headers, ['content-length', String(body.byteLength)] as [string, string]]) req.setHeader(name, value);
    req.end(body);
  });
}

describe('a row ClickHouse refuses', () => {
  it('goes to the DLQ with the engine error; the rest of its batch is stored and the consumer drains', async () => {
    await pipeline.ch.client.command({ query: `ALTER TABLE ${pipeline.ch.db}.events ADD CONSTRAINT refuse_test CHECK key IS NULL OR key != 'refuse-me'` });
    try {
      const dlqBefore = await lastSeq('DLQ');
      const occurredAt = Date.now() - 1_000;
      const ids = Array.from({ length: 30 }, (_, i) => `rf-${i}`);
      // one raw message after another, so they travel in the same packs and the same insert
      ids.forEach((id, i) => pipeline.nc.publish('ingest.rf.sale', enc.encode(JSON.stringify({ id, occurredAt, key: i === 17 ? 'refuse-me' : 'fine', data: { region: 'TW' } }))));
      await pipeline.nc.flush();
      const stored = await waitFor(async () => {
        const found = await storedIds(ids);
        return found.size === 29 && found;
      }, 60_000, '29 rows stored');
      expect(stored.has('rf-17')).toBe(false);
      const refused = await waitFor(async () => {
        const found = (await dlqSince(dlqBefore)).filter((d) => d.record.code === 'REFUSED_BY_SINK');
        return found.length === 1 && found;
      }, 60_000, 'the refused row in the DLQ');
      expect(refused[0]!.record.reason).toMatch(/VIOLATED_CONSTRAINT|Code: 469/);
      expect(JSON.parse(Buffer.from(refused[0]!.record.raw, 'base64').toString())).toMatchObject({ id: 'rf-17', key: 'refuse-me' });
      await waitFor(drained, 60_000, 'every consumer drained');
      expect(pipeline.processor.stats.refused).toBe(1);
    } finally {
      await pipeline.ch.client.command({ query: `ALTER TABLE ${pipeline.ch.db}.events DROP CONSTRAINT refuse_test` });
    }
  }, 90_000);

  it('a revision row ClickHouse refuses is filed in the DLQ; the other groups of the day are written and the revisor goes on', async () => {
    await pipeline.ch.client.command({ query: `ALTER TABLE ${pipeline.ch.db}.report_revisions ADD CONSTRAINT refuse_rev CHECK position(group_key, 'refuse-rev') = 0` });
    try {
      const dlqBefore = await lastSeq('DLQ');
      const occurredAt = Date.now() - 1_000;
      const send = (id: string, region: string) => pipeline.nc.publish('ingest.rv.sale', enc.encode(JSON.stringify({ id, occurredAt, data: { region } })));
      send('rv-1', 'fine');
      send('rv-2', 'refuse-rev');
      await pipeline.nc.flush();
      const revisions = async () => {
        const result = await pipeline.ch.client.query({ query: `SELECT group_key, max(revision) AS revision FROM ${pipeline.ch.db}.report_revisions FINAL WHERE report = 'revenue' AND group_key LIKE '["rv",%' GROUP BY group_key ORDER BY group_key`, format: 'JSONEachRow' });
        return (await result.json<{ group_key: string; revision: number }>()).map((r) => `${r.group_key} ${r.revision}`);
      };
      await waitFor(async () => (await revisions()).join() === '["rv","fine"] 1', 60_000, 'the fine group written');
      const filed = await waitFor(async () => {
        const found = (await dlqSince(dlqBefore)).filter((d) => d.record.code === 'REFUSED_BY_SINK' && d.record.subject === 'sink.report_revisions');
        return found.length > 0 && found;
      }, 60_000, 'the refused revision in the DLQ');
      expect(filed).toHaveLength(1);
      expect(filed[0]!.record.reason).toMatch(/Constraint `refuse_rev` .* is violated/);
      expect(filed[0]!.record.origin).toEqual({ table: 'report_revisions' });
      expect(JSON.parse(Buffer.from(filed[0]!.record.raw, 'base64').toString())).toMatchObject({ report: 'revenue', group_key: '["rv","refuse-rev"]', revision: 1 });
      // the day is not stuck on the refused row: a later event of the fine group makes revision 2
      send('rv-3', 'fine');
      await pipeline.nc.flush();
      await waitFor(async () => (await revisions()).join() === '["rv","fine"] 2', 60_000, 'revision 2 of the fine group');
      expect((await dlqSince(dlqBefore)).filter((d) => d.record.subject === 'sink.report_revisions')).toHaveLength(1);
    } finally {
      await pipeline.ch.client.command({ query: `ALTER TABLE ${pipeline.ch.db}.report_revisions DROP CONSTRAINT refuse_rev` });
    }
  }, 90_000);
});

describe('sources chosen by senders', () => {
  it('keep SLA state for at most monitor.maxSourcesPerSla sources; the events of the rest are stored and the cut is counted', async () => {
    const occurredAt = Date.now() - 1_000;
    const ids = Array.from({ length: 30 }, (_, i) => `cap-${i}`);
    ids.forEach((id, i) => pipeline.nc.publish(`ingest.cap-${i}.sale`, enc.encode(JSON.stringify({ id, occurredAt }))));
    await pipeline.nc.flush();
    await waitFor(async () => (await storedIds(ids)).size === 30, 60_000, 'all 30 events stored');
    await waitFor(drained, 60_000, 'every consumer drained');
    const keys = await kvKeys(pipeline.jsm, MONITOR_BUCKET, 'e.late.>');
    // two sources ("rf", "rv") had state before: 18 of the 30 new ones get some, 12 are cut
    expect(keys).toHaveLength(20);
    const cut = (await monitorRegistry.getSingleMetric('tidemark_monitor_sources_cut_total')!.get()).values.find((v) => v.labels.state === 'e.late');
    expect(cut?.value).toBe(12);
    // and an alert says so, once for the day, whatever more is cut
    const capped = await waitFor(async () => {
      const found = (await readAll(pipeline.js, pipeline.jsm, 'ALERTS')).filter((m) => m.subject === 'alerts.capped.late');
      return found.length > 0 && found;
    }, 60_000, 'a CardinalityCapped alert');
    expect(capped).toHaveLength(1);
  }, 60_000);
});

// ---- generators: what an odd producer might send ----

const oddUnit = fc.constantFrom('a', 'b', '.', '*', '>', ' ', '\n', '\r', '\u0000', '\u0007', '\u0085', '\u2028', '\ud800', '\udc00', '\u{1F600}', 'é', '"', '\\');
const oddString = fc.oneof(
  fc.string({ unit: oddUnit, maxLength: 12 }),
  fc.constantFrom('x'.repeat(300), 'y'.repeat(2_000), '__proto__', 'constructor', '', '1e400'),
);
const goodSource = fc.constantFrom('pp-store', 'pp-\u{1F600}', 'pp-é', `pp-${'z'.repeat(100)}`);
const region = fc.oneof(fc.constantFrom('TW', 'JP'), fc.string({ unit: fc.constantFrom('r', '\u{1F600}'), minLength: 200, maxLength: 400 }));

type Input =
  | { via: 'nats'; good: boolean; subject: string; body: (unique: string, now: number) => string | Uint8Array }
  | { via: 'http'; good: boolean; items: number | undefined; headers: Array<[string, string]>; body: (unique: string, now: number) => string | Uint8Array };

const goodNats = fc.record({ source: goodSource, region }).map(({ source, region }): Input => ({
  via: 'nats',
  good: true,
  subject: `ingest.${source}.sale`,
  body: (unique, now) => JSON.stringify({ id: `good-${unique}`, occurredAt: now - 1_000, data: { amount: '1.50', region } }),
}));

const oddObject = fc.record(
  { id: oddString, source: oddString, type: oddString, key: oddString, occurredAt: fc.oneof(fc.constant('now'), fc.constantFrom(1e300, -1, '2026-13-45T00:00:00Z', 'now')), data: fc.oneof(fc.dictionary(oddString, fc.oneof(oddString, fc.double(), fc.constant(1e21))), oddString) },
  { requiredKeys: ['occurredAt'] },
);

/** The id gets a unique tail, so two odd inputs are never one event's copies. */
const oddJson = (value: Record<string, unknown>, unique: string, now: number): string =>
  JSON.stringify({ ...value, ...(typeof value.id === 'string' ? { id: `${value.id}~${unique}` } : {}), occurredAt: value.occurredAt === 'now' ? now : value.occurredAt });

const oddText = fc.constantFrom(
  (u: string, now: number) => `{"id":"dup-${u}","id":"other-${u}","occurredAt":${now}}`,
  (u: string, now: number) => `{"__proto__":{"polluted":1},"id":"proto-${u}","occurredAt":${now},"data":{"__proto__":{"x":1},"constructor":2}}`,
  (u: string, now: number) => `{"id":"huge-${u}","occurredAt":${now},"data":{"n":1e400,"m":123456789012345678901234567890}}`,
  (u: string, now: number) => `{"id":"deep-${u}","occurredAt":${now},"extra":${'['.repeat(5_000)}${']'.repeat(5_000)}}`,
  (u: string, now: number) => `{"id":"deepdata-${u}","occurredAt":${now},"data":${'{"a":'.repeat(40)}1${'}'.repeat(40)}}`,
  (u: string, now: number) => `{"id":"astral-${u}-\u{1F600}","key":"\u{10FFFF}","occurredAt":${now}}`,
  (u: string, now: number) => `{"id":"nl-${u}\\n","occurredAt":${now}}`,
  (u: string, now: number) => `{"id":"lone-${u}","key":"\\ud800","occurredAt":${now}}`,
);

const oddSubject = fc.constantFrom('ingest.pp-odd.sale', 'ingest.pp-odd', 'ingest.pp-odd.a.b.c', `ingest.${'q'.repeat(1_500)}.sale`, `ingest.pp-odd.${'t'.repeat(200)}`, 'ingest.é.\u{1F600}');

const oddNats = fc.oneof(
  fc.record({ subject: oddSubject, value: oddObject }).map(({ subject, value }): Input => ({ via: 'nats', good: false, subject, body: (u, now) => oddJson(value, u, now) })),
  fc.record({ subject: oddSubject, text: oddText }).map(({ subject, text }): Input => ({ via: 'nats', good: false, subject, body: text })),
  fc.uint8Array({ maxLength: 64 }).map((bytes): Input => ({ via: 'nats', good: false, subject: 'ingest.pp-raw.sale', body: () => bytes })),
);

const oddHeaders = fc.subarray<[string, string]>([['constructor', 'x'], ['__proto__', 'y'], ['hasOwnProperty', 'z'], ['x-long', 'v'.repeat(4_000)], ['traceparent', 't-1'], ['cookie', 'secret']]);
const contentType = fc.constantFrom('application/json', 'application/x-ndjson', 'text/plain');

const httpInput = fc.oneof(
  fc.record({ headers: oddHeaders, type: contentType, source: goodSource, region }).map(({ headers, type, source, region }): Input => ({
    via: 'http',
    good: true,
    items: 1,
    headers: [...headers, ['content-type', type]],
    body: (u, now) => JSON.stringify({ id: `good-${u}`, source, type: 'sale', occurredAt: now - 1_000, data: { amount: '2', region } }),
  })),
  fc.record({ headers: oddHeaders, values: fc.array(oddObject, { minLength: 1, maxLength: 4 }) }).map(({ headers, values }): Input => ({
    via: 'http',
    good: false,
    items: values.length,
    headers: [...headers, ['content-type', 'application/json']],
    body: (u, now) => `[${values.map((v, i) => oddJson(v, `${u}-${i}`, now)).join(',')}]`,
  })),
  fc.record({ headers: oddHeaders, texts: fc.array(oddText, { minLength: 1, maxLength: 3 }) }).map(({ headers, texts }): Input => ({
    via: 'http',
    good: false,
    items: texts.length,
    headers: [...headers, ['content-type', 'application/x-ndjson']],
    body: (u, now) => texts.map((t, i) => t(`${u}-${i}`, now)).join('\n'),
  })),
  fc.record({ headers: oddHeaders, bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }).map(({ headers, bytes }): Input => ({ via: 'http', good: false, items: undefined, headers, body: () => bytes })),
);

const run = fc.array(fc.oneof({ arbitrary: goodNats, weight: 3 }, { arbitrary: oddNats, weight: 4 }, { arbitrary: httpInput, weight: 2 }), { minLength: 6, maxLength: 12 });

let runNo = 0;

describe('whatever producers send', () => {
  it('every raw message ends exactly once, as a row or a DLQ record; every good event is stored; every consumer drains', async () => {
    await fc.assert(
      fc.asyncProperty(run, async (inputs) => {
        const r = ++runNo;
        const [ingestBefore, dlqBefore] = await Promise.all([lastSeq('INGEST'), lastSeq('DLQ')]);
        const now = Date.now();
        const goodIds: string[] = [];
        const answers: Array<{ answer: HttpAnswer; items: number | undefined }> = [];
        let natsPublished = 0;
        for (const [i, input] of inputs.entries()) {
          const unique = `${r}-${i}`;
          const body = input.body(unique, now);
          const bytes = typeof body === 'string' ? enc.encode(body) : body;
          if (input.good) goodIds.push(`good-${unique}`);
          if (input.via === 'nats') {
            pipeline.nc.publish(input.subject, bytes);
            natsPublished++;
          } else {
            await pipeline.nc.flush();
            answers.push({ answer: await post(bytes, input.headers, '?source=pp-http&type=sale'), items: input.items });
          }
        }
        await pipeline.nc.flush();

        for (const { answer, items } of answers) {
          expect([202, 400]).toContain(answer.status);
          if (items !== undefined) expect(answer.accepted.length + answer.rejected.length).toBe(items);
        }
        const httpAccepted = answers.reduce((n, { answer }) => n + answer.accepted.length, 0);
        const expectedRaw = natsPublished + httpAccepted;

        // every INGEST sequence of this run is a row or a DLQ record, and never both
        const outcome = await waitFor(async () => {
          const last = await lastSeq('INGEST');
          if (last - ingestBefore !== expectedRaw) return false;
          const [rows, dlq] = await Promise.all([storedSeqs(ingestBefore + 1, last), dlqSince(dlqBefore)]);
          const filed = dlq.filter((d) => 'stream' in d.record.origin && d.record.origin.stream === 'INGEST').map((d) => (d.record.origin as { seq: number }).seq);
          return rows.length + filed.length === expectedRaw && { rows, filed, dlq, last };
        }, 90_000, `run ${r}: ${expectedRaw} raw messages stored or filed`);
        const seen = [...outcome.rows, ...outcome.filed].sort((a, b) => a - b);
        expect(seen).toEqual(Array.from({ length: expectedRaw }, (_, k) => ingestBefore + 1 + k));

        // every item an HTTP caller was told is rejected is in the DLQ, under its request
        const httpFiled = new Set(outcome.dlq.map((d) => d.msgId));
        for (const { answer } of answers) for (const { index } of answer.rejected) expect(httpFiled.has(`http-${answer.requestId}-${index}`)).toBe(true);

        const stored = await storedIds(goodIds);
        expect(goodIds.filter((id) => !stored.has(id))).toEqual([]);
        await waitFor(drained, 90_000, `run ${r}: every consumer drained`);
      }),
      { numRuns: 25, seed: 18, endOnFailure: true },
    );
  }, 300_000);
});

describe('whatever producers send as saga triggers', () => {
  const trigger = fc.oneof(
    { arbitrary: fc.constant((u: string) => JSON.stringify({ id: `good-${u}`, data: { orderId: u, script: {} } })), weight: 2 },
    { arbitrary: oddObject.map((value) => (u: string, now: number) => oddJson(value, u, now)), weight: 2 },
    { arbitrary: oddText, weight: 2 },
    { arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => () => bytes), weight: 1 },
  );

  it('every trigger starts one saga or is filed in the DLQ, and the saga consumers drain', async () => {
    const sagaCount = async () => (await kvKeys(pipeline.jsm, SAGA_BUCKET)).length;
    let sagaRun = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(trigger, { minLength: 3, maxLength: 8 }), async (bodies) => {
        const r = ++sagaRun;
        const [sagasBefore, dlqBefore] = await Promise.all([sagaCount(), lastSeq('DLQ')]);
        const now = Date.now();
        for (const [i, body] of bodies.entries()) {
          const data = body(`s${r}-${i}`, now);
          pipeline.nc.publish(triggerSubject('order'), typeof data === 'string' ? enc.encode(data) : data);
        }
        await pipeline.nc.flush();
        const outcome = await waitFor(async () => {
          const [started, dlq] = await Promise.all([sagaCount(), dlqSince(dlqBefore)]);
          const filed = dlq.filter((d) => 'stream' in d.record.origin && d.record.origin.stream === 'SAGAS').length;
          return started - sagasBefore + filed === bodies.length && { started: started - sagasBefore, filed };
        }, 90_000, `saga run ${r}: ${bodies.length} triggers started or filed`);
        expect(outcome.started + outcome.filed).toBe(bodies.length);
        await waitFor(async () => {
          const info = await pipeline.jsm.consumers.info('SAGAS', 'saga-triggers');
          return info.num_pending === 0 && info.num_ack_pending === 0;
        }, 90_000, `saga run ${r}: the trigger consumer drained`);
      }),
      { numRuns: 6, seed: 18, endOnFailure: true },
    );
  }, 300_000);
});
