import { describe, expect, it } from 'vitest';
import { headers } from '@nats-io/transport-node';
import type { DlqRecord } from '../../src/nats/dlq.ts';
import { INGEST_PACK_HEADER } from '../../src/ingest/ingest-packs.ts';
import { storedAtMs } from '../../src/nats/js-msg.ts';
import { testConfig } from '../harness/config.ts';
import { pipelineDrained } from '../harness/ingest.ts';
import { useTestPipeline } from '../harness/pipeline.ts';
import { json, readAll, waitFor } from '../harness/streams.ts';

const pipeline = useTestPipeline((database) => testConfig({ clickhouse: { database }, http: { port: 0, packFrom: 16 } }));

type IngestResponse = {
  accepted: Array<{ index: number; id: string; seq: number; duplicate?: true }>;
  rejected: Array<{ index: number; code: string; reason: string }>;
};

async function postNdjson(lines: string[], query = ''): Promise<{ status: number; json: IngestResponse }> {
  const res = await fetch(`${pipeline.http.url}/v1/events${query}`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: lines.join('\n') });
  return { status: res.status, json: (await res.json()) as IngestResponse };
}

const occurredAt = Date.now() - 60_000;
const sale = (source: string, id: string | undefined, amount: string): string =>
  JSON.stringify({ ...(id === undefined ? {} : { id }), source, type: 'sale', occurredAt, data: { amount } });

const drained = () => pipelineDrained(pipeline.jsm);

type Row = { id: string; receivedAt: string; amount: string };

/** Every stored row of a source, copies included (no FINAL): a row stored twice shows twice. */
async function rows(source: string): Promise<Row[]> {
  const result = await pipeline.ch.client.query({
    query: `SELECT id, toString(toUnixTimestamp64Milli(received_at)) AS receivedAt, JSONExtractString(data, 'amount') AS amount FROM ${pipeline.ch.db}.events WHERE source = {source:String} ORDER BY id`,
    query_params: { source },
    format: 'JSONEachRow',
  });
  return result.json<Row>();
}

/** Once the pipeline has drained and `n` rows of `source` are there: exactly `n`, each id stored once. */
async function storedOnce(source: string, n: number, what: string): Promise<Row[]> {
  await drained();
  const stored = await waitFor(async () => {
    const found = await rows(source);
    return found.length >= n && found;
  }, 60_000, what);
  expect(stored).toHaveLength(n);
  expect(new Set(stored.map((r) => r.id)).size).toBe(n);
  return stored;
}

const dlqOf = async (source: string): Promise<DlqRecord[]> =>
  (await readAll(pipeline.js, pipeline.jsm, 'DLQ')).map((m) => json<DlqRecord>(m)).filter((r) => r.subject.startsWith(`ingest.${source}.`));

describe('HTTP items packed into INGEST', () => {
  it('stores every good item of a large request once, rejects in the DLQ, receivedAt from the pack store time', async () => {
    const source = 'pack-a';
    const lines: string[] = [];
    for (let i = 0; i < 300; i++) lines.push(sale(source, `e-${i}`, `${i}.10`));
    for (let i = 0; i < 150; i++) lines.push(sale(source, undefined, `${i}.20`));
    // byte-identical copies inside the request, and rejects among the good ones
    for (let i = 0; i < 5; i++) lines.push(sale(source, `e-${i}`, `${i}.10`));
    for (let i = 0; i < 10; i++) lines.push(JSON.stringify({ id: `bad-${i}`, source, type: 'sale', data: {} }));
    for (let i = 0; i < 10; i++) lines.push(`{"id": "broken-${i}", oops`);

    // the defaults give the unparseable lines a subject of this source
    const { status, json: body } = await postNdjson(lines, `?source=${source}&type=sale`);
    expect(status).toBe(400);
    expect(body.rejected).toHaveLength(20);
    expect(body.accepted).toHaveLength(455);
    expect(body.accepted.filter((a) => a.duplicate)).toHaveLength(5);

    const ingested = (await readAll(pipeline.js, pipeline.jsm, 'INGEST')).filter((m) => m.subject === `ingest.${source}.sale`);
    // packs, not one message an item: one of items with ids and one without, at these sizes
    expect(ingested).toHaveLength(2);
    expect(ingested.map((m) => Number(m.headers?.get(INGEST_PACK_HEADER))).sort((a, b) => a - b)).toEqual([150, 300]);
    const storedAt = new Map(ingested.map((m) => [m.seq, storedAtMs(m)]));

    // ids the response gives for items without one name the pack and the place in it
    const idless = body.accepted.filter((a) => a.index >= 300 && a.index < 450);
    expect(idless.every((a, k) => a.id === `~INGEST-${a.seq}-${k}`)).toBe(true);

    const stored = await storedOnce(source, 450, 'the rows of the request');
    const seqOf = new Map(body.accepted.map((a) => [a.id, a.seq]));
    for (const row of stored) expect(Number(row.receivedAt)).toBe(storedAt.get(seqOf.get(row.id)!));
    expect(stored.find((r) => r.id === idless[7]!.id)?.amount).toBe('7.20');

    const dlq = await dlqOf(source);
    expect(dlq.map((r) => r.code).sort()).toEqual([...Array(10).fill('INVALID_JSON'), ...Array(10).fill('MISSING_OCCURRED_AT')]);
  }, 120_000);

  it('stores nothing twice when a request is retried, whole or cut differently', async () => {
    const source = 'pack-b';
    const lines = Array.from({ length: 200 }, (_, i) => sale(source, `r-${i}`, `${i}.00`));
    const first = await postNdjson(lines);
    expect(first.status).toBe(202);
    const again = await postNdjson(lines);
    expect(again.status).toBe(202);
    // the identical pack collapses in INGEST: same sequences, every item a duplicate
    expect(again.json.accepted.every((a, i) => a.duplicate && a.seq === first.json.accepted[i]!.seq)).toBe(true);

    // a retry with more items makes another pack; the NATS gateway drops the copies by identity
    const more = [...lines, ...Array.from({ length: 3 }, (_, i) => sale(source, `extra-${i}`, '1.00'))];
    const third = await postNdjson(more);
    expect(third.status).toBe(202);
    const ingested = (await readAll(pipeline.js, pipeline.jsm, 'INGEST')).filter((m) => m.subject === `ingest.${source}.sale`);
    expect(ingested).toHaveLength(2);

    await storedOnce(source, 203, 'the rows of the requests');
    expect(await dlqOf(source)).toEqual([]);
  }, 120_000);

  it('files a pack whose lines do not match its count in the DLQ whole, and reads a good NATS pack item by item', async () => {
    const source = 'pack-c';
    const bad = headers();
    bad.set(INGEST_PACK_HEADER, '3');
    await pipeline.js.publish(`ingest.${source}.sale`, [sale(source, 'x-1', '1.00'), sale(source, 'x-2', '2.00')].join('\n'), { headers: bad });
    const good = headers();
    good.set(INGEST_PACK_HEADER, '2');
    await pipeline.js.publish(`ingest.${source}.sale`, [sale(source, 'y-1', '1.00'), '{"nope'].join('\n'), { headers: good });
    await drained();
    const dlq = await waitFor(async () => {
      const found = await dlqOf(source);
      return found.length >= 2 && found;
    }, 30_000, 'the DLQ records');
    expect(dlq.map((r) => [r.code, Buffer.from(r.raw, 'base64').toString()]).sort()).toEqual([
      ['INVALID_JSON', [sale(source, 'x-1', '1.00'), sale(source, 'x-2', '2.00')].join('\n')],
      ['INVALID_JSON', '{"nope'],
    ]);
    const stored = await waitFor(async () => {
      const found = await rows(source);
      return found.length >= 1 && found;
    }, 30_000, 'the good item');
    expect(stored.map((r) => r.id)).toEqual(['y-1']);
  }, 60_000);
});
