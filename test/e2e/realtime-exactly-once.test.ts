import type { ClickHouseClient } from '@clickhouse/client';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EmbeddedClickHouseServer } from '../../src/clickhouse/http-server/server.ts';
import { testConfig } from '../harness/config.ts';
import type { TestNats } from '../harness/nats.ts';
import { startProcessStack, type ProcessStack } from '../harness/process-stack.ts';
import { exited, spawnTidemark, terminate, waitForDailyView } from '../harness/processes.ts';
import { eventsOnStream, waitFor } from '../harness/streams.ts';
import { centsText, referenceWindows, type ReferenceEvent } from '../support/window-reference.ts';

const WINDOW = { size: 600_000, slide: 300_000 };
const settings = {
  // a message whose holder died comes again within 3 s, inside the restarted instance's start-up hold (idleTimeout)
  nats: { ackWait: '3s' },
  // a dead instance is known as such after 6 × idleTimeout (30 s) without a checkpoint
  processor: { batchSize: 500 },
  // small packs: many messages, so a kill lands between folded, written and acked ones
  ingest: { eventsPerMessage: 10 },
  reports: [{ name: 'rt', types: ['sale'], groupBy: ['source'], measures: { amount: { fn: 'sum', field: 'amount' }, orders: { fn: 'count' } }, windows: [{ size: '10m', slide: '5m' }] }],
};
const config = testConfig(settings);
const db = config.clickhouse.database;

let stack: ProcessStack;
let server: TestNats;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let clickhouse: EmbeddedClickHouseServer;
let client: ClickHouseClient;
let configFile: string;

beforeAll(async () => {
  stack = await startProcessStack(settings, 'tidemark-rt-once-');
  ({ server, nc, js, jsm, clickhouse, client, configFile } = stack);
});

afterAll(async () => {
  await stack?.dispose();
});

/**
 * The scenario: stores each sending their sales in occurredAt order, spread over
 * the last 40 minutes, published in one burst of core publishes, the stores interleaved.
 */
function orderedSales(now: number, stores: number, perStore: number, tag: string): { events: ReferenceEvent[]; messages: Array<{ subject: string; body: string }> } {
  const events: ReferenceEvent[] = [];
  const messages: Array<{ subject: string; body: string }> = [];
  for (let i = 0; i < perStore; i++) {
    for (let s = 0; s < stores; s++) {
      const source = `${tag}-${s}`;
      const occurredAt = now - 2_400_000 + Math.floor((i * 2_400_000) / perStore) + s;
      const cents = BigInt(100 + ((i * 7_919 + s * 104_729) % 50_000));
      const id = `${source}-${i}`;
      events.push({ source, id, occurredAt, cents });
      messages.push({ subject: `ingest.${source}.sale`, body: JSON.stringify({ id, occurredAt, data: { amount: centsText(cents) } }) });
    }
  }
  return { events, messages };
}

type Row = { size_ms: string; start: string; group_key: string; events: string; amount: string; late_refused: string; closed: number; instances: string };
const viewRows = async (): Promise<Row[]> =>
  (await client.query({ query: `SELECT size_ms, toUnixTimestamp64Milli(window_start) AS start, group_key, events, measures['amount'] AS amount, late_refused, closed, instances FROM ${db}.realtime_latest`, format: 'JSONEachRow' })).json<Row>();

/** Waits until the view holds as many events as the reference, then holds every window of `tag` to it. */
async function expectReference(events: ReferenceEvent[], tag: string): Promise<Row[]> {
  const expected = referenceWindows([WINDOW], events);
  const total = [...expected.values()].reduce((n, f) => n + f.events, 0);
  const ours = (rows: Row[]) => rows.filter((r) => r.group_key.startsWith(`["${tag}-`));
  let seen = '';
  await waitFor(async () => {
    const rows = ours(await viewRows());
    const held = rows.reduce((n, r) => n + Number(r.events), 0);
    seen = `${held} of ${total}, ${rows.reduce((n, r) => n + Number(r.late_refused), 0)} refused`;
    return held >= total;
  }, 60_000, 'the realtime view to hold every event').catch((err: Error) => {
    throw new Error(`${err.message} (${seen})`);
  });
  const rows = ours(await viewRows());
  const got = new Map(rows.map((r) => [`${r.size_ms}/${WINDOW.slide}/${r.start}/${r.group_key}`, { events: Number(r.events), amount: r.amount }]));
  expect(got).toEqual(expected);
  expect(rows.every((r) => r.late_refused === '0')).toBe(true);
  return rows;
}

type Checkpoint = { instance: string; folded: Array<[string, string]>; watermarks: Record<string, string>; emitted_at: string; final: number };
const checkpoints = async (): Promise<Checkpoint[]> =>
  (await client.query({ query: `SELECT instance, folded, watermarks, toUnixTimestamp64Milli(emitted_at) AS emitted_at, final FROM ${db}.realtime_windows FINAL WHERE size_ms = 0 AND report = ''`, format: 'JSONEachRow' })).json<Checkpoint>();

const env = () => ({ NATS_URL: server.url, CLICKHOUSE_URL: clickhouse.url });

describe('realtime view exactly once', () => {
  it('a processor killed with SIGKILL between folding and writing: after restart every window equals the reference', async () => {
    const { events, messages } = orderedSales(Date.now(), 3, 6_000, 'crash');
    let processor = spawnTidemark(['processor', '--config', configFile], env());
    for (const msg of messages) nc.publish(msg.subject, msg.body);
    await nc.flush();

    // kill once the instance has written a checkpoint naming messages not yet acked: their
    // redeliveries must be skipped, while messages folded since that write must be folded again
    await waitFor(async () => {
      const floor = (await jsm.consumers.info('EVENTS', 'processor')).ack_floor.stream_seq;
      return (await checkpoints()).some((c) => c.folded.some(([, to]) => Number(to) > floor));
    }, 150_000, 'a checkpoint ahead of the ack floor');
    processor.kill('SIGKILL');
    await exited(processor);
    const info = await jsm.consumers.info('EVENTS', 'processor');
    expect(info.ack_floor.stream_seq).toBeLessThan((await jsm.streams.info('EVENTS')).state.last_seq);
    const dead = (await checkpoints())[0]!;
    const foldedAboveFloor = dead.folded.filter(([, to]) => Number(to) > info.ack_floor.stream_seq);
    expect(foldedAboveFloor.length).toBeGreaterThan(0);

    processor = spawnTidemark(['processor', '--config', configFile], env());
    try {
      await waitForDailyView(js, jsm, events.length);
      await expectReference(events, 'crash');
      expect(await checkpoints()).toHaveLength(2);
    } finally {
      expect(await terminate(processor)).toBe(0);
    }
    // a stopped processor says so: no one waits for it, and it no longer holds windows open
    expect((await checkpoints()).map((c) => Number(c.final)).sort()).toEqual([0, 1]);
  }, 360_000);

  it('two processors: the merged view is exact, and a window is closed only once both have closed it', async () => {
    const { events, messages } = orderedSales(Date.now(), 4, 3_000, 'pair');
    const before = new Set((await checkpoints()).map((c) => c.instance));
    const processors = [spawnTidemark(['processor', '--config', configFile], env()), spawnTidemark(['processor', '--config', configFile], env())];
    try {
      // both are reading before the burst, so both get a share of it
      await waitFor(async () => (await checkpoints()).filter((c) => !before.has(c.instance)).length === 2, 60_000, 'both processors to be up');
      for (const msg of messages) nc.publish(msg.subject, msg.body);
      await nc.flush();
      await waitForDailyView(js, jsm, events.length + 18_000);
      const rows = await expectReference(events, 'pair');
      // what the pipeline adds to a source's disorder (processor.outOfOrderness covers the rest): in
      // EVENTS order, how far an event is behind the latest of its source before it — measured 0 here
      const latest = new Map<string, number>();
      let disorder = 0;
      for (const e of (await eventsOnStream(js, jsm)).filter((e) => e.source.startsWith('pair-'))) {
        disorder = Math.max(disorder, (latest.get(e.source) ?? -Infinity) - e.occurredAt);
        latest.set(e.source, Math.max(latest.get(e.source) ?? -Infinity, e.occurredAt));
      }
      expect(disorder).toBe(0);
      expect(Math.max(...rows.map((r) => Number(r.instances)))).toBe(2);
      // read the view and the two live checkpoints in one query's time: closed = both watermarks past the end
      // live: not stopped (final), and a checkpoint at most 6 × idleTimeout older than the newest
      const closingNow = async () => {
        const cps = (await checkpoints()).filter((c) => c.watermarks.rt !== undefined && Number(c.final) === 0);
        const newest = Math.max(...cps.map((c) => Number(c.emitted_at)));
        const live = cps.filter((c) => Number(c.emitted_at) >= newest - 30_000);
        return { closing: Math.min(...live.map((c) => Number(c.watermarks.rt))), ours: live.filter((c) => !before.has(c.instance)).length };
      };
      await waitFor(async () => (await closingNow()).ours === 2, 30_000, 'both instances to have closed windows');
      const { closing } = await closingNow();
      const again = (await viewRows()).filter((r) => r.group_key.startsWith('["pair-'));
      const { closing: after } = await closingNow();
      // the watermarks may move between the reads: windows ending between the two readings can go either way
      for (const r of again) {
        const end = Number(r.start) + WINDOW.size;
        if (end <= closing) expect(Boolean(r.closed)).toBe(true);
        if (end > after) expect(Boolean(r.closed)).toBe(false);
      }
      expect(again.some((r) => r.closed) && again.some((r) => !r.closed)).toBe(true);
    } finally {
      for (const processor of processors) expect(await terminate(processor)).toBe(0);
    }
  }, 180_000);
});
