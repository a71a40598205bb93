import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import type { DlqRecord } from '../../src/nats/dlq.ts';
import { businessDay } from '../../src/core/business-day.ts';
import { dailyFigures } from '../../src/sinks/clickhouse/daily-figures.ts';
import { testConfig } from '../harness/config.ts';
import { pipelineDrained } from '../harness/ingest.ts';
import { useTestPipeline } from '../harness/pipeline.ts';
import { json, readAll } from '../harness/streams.ts';
import { oracleDaily } from '../support/oracle.ts';

const report = {
  name: 'tills',
  types: ['sale'],
  timeZone: 'UTC',
  groupBy: ['source'],
  measures: { n: { fn: 'count' }, amount: { fn: 'sum', field: 'amount' }, customers: { fn: 'uniq', field: 'customer' } },
};

const pipeline = useTestPipeline((database) => testConfig({ reports: [report], clickhouse: { database }, http: { port: 0 } }), { revisorIntervalMs: 1_000 });

const YESTERDAY_NOON = Date.parse(`${businessDay(Date.now() - 86_400_000, 'UTC')}T12:00:00Z`);

/** One send: a source of the run, an id several sources share, which of three contents, and the way in. */
type Send = { source: number; id: number; content: number; via: 'nats' | 'http' };

const sends = fc.array(
  fc.record({ source: fc.integer({ min: 0, max: 2 }), id: fc.integer({ min: 0, max: 3 }), content: fc.integer({ min: 0, max: 2 }), via: fc.constantFrom('nats' as const, 'http' as const) }),
  { minLength: 1, maxLength: 24 },
);

/** The event a send carries: content 0 and 1 differ in data, 2 in occurredAt (another hour of the same day). */
function body(send: Send): { id: string; occurredAt: number; data: Record<string, string> } {
  return {
    id: String(send.id),
    occurredAt: YESTERDAY_NOON + (send.content === 2 ? 3_600_000 : 0),
    data: { amount: `${send.id}.${send.content === 1 ? 5 : 0}0`, customer: `c${(send.id + send.content) % 3}` },
  };
}

/** The bytes that land in INGEST: a NATS publish as sent, an HTTP item as the HTTP gateway re-serialises it. */
const rawOf = (send: Send, source: string): string =>
  send.via === 'nats' ? JSON.stringify(body(send)) : JSON.stringify({ source, type: 'sale', ...body(send) });

/**
 * The plain reference: the first copy of each (source, id) in send order is the event;
 * a later copy with the same content is a silent duplicate; one with other content is
 * a conflict, kept in the DLQ, except an HTTP item byte-identical to an earlier HTTP
 * item, which INGEST itself drops as a re-post.
 */
function oracle(run: Send[], sourceName: (i: number) => string): { events: TidemarkEvent[]; conflicts: string[] } {
  const first = new Map<string, Send>();
  const posted = new Set<string>();
  const conflicts: string[] = [];
  for (const send of run) {
    const source = sourceName(send.source);
    const raw = rawOf(send, source);
    if (send.via === 'http') {
      if (posted.has(raw)) continue;
      posted.add(raw);
    }
    const identity = JSON.stringify([source, send.id]);
    const winner = first.get(identity);
    if (!winner) first.set(identity, send);
    else if (winner.content !== send.content) conflicts.push(`${source} ${raw}`);
  }
  const events = [...first.values()].map((send): TidemarkEvent => {
    const source = sourceName(send.source);
    return { ...body(send), type: 'sale', source, key: null, receivedAt: 0, seq: 0 };
  });
  return { events, conflicts: conflicts.sort() };
}

const drained = () => pipelineDrained(pipeline.jsm);

let runs = 0;

describe('identity (source, id) through NATS and HTTP', () => {
  it('counts each (source, id) once across sources sharing ids, re-sends and conflicting copies, as the oracle says', async () => {
    await fc.assert(
      fc.asyncProperty(sends, async (run) => {
        const tag = `run${++runs}`;
        const sourceName = (i: number) => `${tag}-till-${'abc'[i]}`;
        for (const send of run) {
          const source = sourceName(send.source);
          if (send.via === 'nats') await pipeline.js.publish(`ingest.${source}.sale`, rawOf(send, source));
          else {
            const res = await fetch(`${pipeline.http.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: rawOf(send, source) });
            expect(res.status).toBe(202);
          }
        }
        await drained();
        const expected = oracle(run, sourceName);

        const stored = await (await pipeline.ch.client.query({
          query: `SELECT source, id, toUnixTimestamp64Milli(occurred_at) AS occurredAt, data FROM ${pipeline.ch.db}.events FINAL WHERE startsWith(source, {tag:String}) ORDER BY source, id`,
          query_params: { tag: `${tag}-` },
          format: 'JSONEachRow',
        })).json<{ source: string; id: string; occurredAt: string; data: string }>();
        const want = expected.events
          .map((e) => ({ source: e.source, id: e.id, occurredAt: String(e.occurredAt), data: JSON.stringify(e.data) }))
          .sort((a, b) => (a.source === b.source ? a.id.localeCompare(b.id) : a.source.localeCompare(b.source)));
        expect(stored).toEqual(want);

        const figures = await dailyFigures(pipeline.ch.client, pipeline.ch.db, pipeline.config.reports[0]!, businessDay(YESTERDAY_NOON, 'UTC'));
        const mine = figures.filter((f) => f.groupKey.includes(`${tag}-`));
        const reference = [...oracleDaily(pipeline.config.reports[0]!, expected.events).values()];
        expect(new Map(mine.map((f) => [f.groupKey, [f.events, f.measures]]))).toEqual(new Map(reference.map((f) => [f.group, [f.events, f.measures]])));

        const dlq = (await readAll(pipeline.js, pipeline.jsm, 'DLQ')).map((m) => json<DlqRecord>(m)).filter((r) => r.subject.startsWith(`ingest.${tag}-`));
        expect(dlq.every((r) => r.code === 'DUPLICATE_ID_CONFLICT')).toBe(true);
        expect(dlq.map((r) => `${r.subject.split('.')[1]} ${Buffer.from(r.raw, 'base64').toString()}`).sort()).toEqual(expected.conflicts);
      }),
      { numRuns: 8, endOnFailure: true },
    );
  }, 120_000);
});
