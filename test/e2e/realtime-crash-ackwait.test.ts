import type { ClickHouseClient } from '@clickhouse/client';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EmbeddedClickHouseServer } from '../../src/clickhouse/http-server/server.ts';
import { testConfig } from '../harness/config.ts';
import type { TestNats } from '../harness/nats.ts';
import { startProcessStack, type ProcessStack } from '../harness/process-stack.ts';
import { exited, spawnTidemark, terminate } from '../harness/processes.ts';
import { waitFor } from '../harness/streams.ts';
import { centsText, referenceWindows, type ReferenceEvent } from '../support/window-reference.ts';

/**
 * A crash with a production-like ackWait: the killed instance's unacked messages come back
 * 20 s later (then wait out its 30 s liveness), far past the 2 s out-of-orderness and the
 * 5 s start-up hold, while the other instance folds the rest of the stream at once. Each
 * message's event times move the watermark only once the ack floor covers it, so those
 * redeliveries are never behind it: not one event refused.
 */
const WINDOW = { size: 600_000, slide: 300_000 };
const settings = {
  nats: { ackWait: '20s' },
  processor: { batchSize: 200, outOfOrderness: '2s' },
  ingest: { eventsPerMessage: 10 },
  reports: [{ name: 'rt', types: ['sale'], groupBy: ['source'], measures: { amount: { fn: 'sum', field: 'amount' }, orders: { fn: 'count' } }, windows: [{ size: '10m', slide: '5m' }] }],
};

let stack: ProcessStack;
let server: TestNats;
let nc: NatsConnection;
let jsm: JetStreamManager;
let clickhouse: EmbeddedClickHouseServer;
let client: ClickHouseClient;
let configFile: string;
const db = testConfig(settings).clickhouse.database;

beforeAll(async () => {
  stack = await startProcessStack(settings, 'tidemark-rt-crash-');
  ({ server, nc, jsm, clickhouse, client, configFile } = stack);
});

afterAll(async () => {
  await stack?.dispose();
});

type Row = { size_ms: string; start: string; group_key: string; events: string; amount: string; late_refused: string };
const viewRows = async (): Promise<Row[]> =>
  (await client.query({ query: `SELECT size_ms, toUnixTimestamp64Milli(window_start) AS start, group_key, events, measures['amount'] AS amount, late_refused FROM ${db}.realtime_latest`, format: 'JSONEachRow' })).json<Row>();
type Checkpoint = { instance: string; folded: Array<[string, string]> };
const checkpoints = async (): Promise<Checkpoint[]> =>
  (await client.query({ query: `SELECT instance, folded FROM ${db}.realtime_windows FINAL WHERE size_ms = 0 AND report = ''`, format: 'JSONEachRow' }).catch(() => undefined))?.json<Checkpoint>() ?? [];
const ackFloor = async () => (await jsm.consumers.info('EVENTS', 'processor')).ack_floor.stream_seq;
const highestFolded = (c: Checkpoint | undefined) => Math.max(0, ...(c?.folded ?? []).map(([, to]) => Number(to)));
const env = () => ({ NATS_URL: server.url, CLICKHOUSE_URL: clickhouse.url });

describe('realtime view across a crash with ackWait far above outOfOrderness', () => {
  it('one of two processors killed mid-stream: the other folds the rest at once, yet every window equals the reference and nothing is refused', async () => {
    // four stores, each sending its sales in occurredAt order over the last 40 minutes, interleaved
    const now = Date.now();
    const events: ReferenceEvent[] = [];
    const messages: Array<{ subject: string; body: string }> = [];
    for (let i = 0; i < 3_000; i++) {
      for (let s = 0; s < 4; s++) {
        const source = `ack-${s}`;
        const occurredAt = now - 2_400_000 + Math.floor((i * 2_400_000) / 3_000) + s;
        const cents = BigInt(100 + ((i * 7_919 + s * 104_729) % 50_000));
        events.push({ source, id: `${source}-${i}`, occurredAt, cents });
        messages.push({ subject: `ingest.${source}.sale`, body: JSON.stringify({ id: `${source}-${i}`, occurredAt, data: { amount: centsText(cents) } }) });
      }
    }
    // two processors, both up before the burst (a slow start on a loaded machine must not change the scenario)
    const processors = [spawnTidemark(['processor', '--config', configFile], env()), spawnTidemark(['processor', '--config', configFile], env())];
    let survivor = processors[1]!;
    try {
      await waitFor(async () => (await checkpoints()).length >= 2, 180_000, 'both processors to be up');
      // a steady flow (200 events every 250 ms, about 15 s), so that the kill lands in the middle of it
      let sent = 0;
      const flow = (async () => {
        for (; sent < messages.length; sent += 200) {
          for (const msg of messages.slice(sent, sent + 200)) nc.publish(msg.subject, msg.body);
          await nc.flush();
          await new Promise((r) => setTimeout(r, 250));
        }
      })();
      // one is killed once it has written a checkpoint naming messages not yet acked: folded, unacked, in doubt
      let dead: Checkpoint | undefined;
      await waitFor(async () => {
        const floor = await ackFloor();
        dead = (await checkpoints()).find((c) => c.folded.some(([, to]) => Number(to) > floor));
        return dead !== undefined;
      }, 120_000, 'a checkpoint ahead of the ack floor');
      const victim = processors.find((p) => dead!.instance.includes(`-${p.pid}-`))!;
      survivor = processors.find((p) => p !== victim)!;
      victim.kill('SIGKILL');
      await exited(victim);
      const floorAtKill = await ackFloor();
      dead = (await checkpoints()).find((c) => c.instance === dead!.instance)!;
      expect(highestFolded(dead)).toBeGreaterThan(floorAtKill);
      expect(sent).toBeLessThan(messages.length);
      await flow;
      // the survivor folds and writes messages past the dead one's while those are still in doubt (the floor stuck below them)
      await waitFor(async () => {
        const other = (await checkpoints()).find((c) => c.instance.includes(`-${survivor.pid}-`));
        return highestFolded(other) > highestFolded(dead) + 100 && (await ackFloor()) < highestFolded(dead);
      }, 60_000, 'the survivor to fold newer messages while the dead one\'s are unacked');

      // every message acked: every fold that counts is written (an ack waits for the checkpoint naming it)
      await waitFor(async () => {
        const info = await jsm.consumers.info('EVENTS', 'processor');
        return info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.stream_seq > 0;
      }, 240_000, 'every EVENTS message acked');
      const expected = referenceWindows([WINDOW], events);
      const total = [...expected.values()].reduce((n, f) => n + f.events, 0);
      let seen = '';
      await waitFor(async () => {
        const rows = (await viewRows()).filter((r) => r.group_key.startsWith('["ack-'));
        seen = `${rows.reduce((n, r) => n + Number(r.events), 0)} of ${total}, ${rows.reduce((n, r) => n + Number(r.late_refused), 0)} refused`;
        return rows.reduce((n, r) => n + Number(r.events) + Number(r.late_refused), 0) >= total;
      }, 60_000, 'the realtime view to account for every event').catch((err: Error) => {
        throw new Error(`${err.message} (${seen})`);
      });
      const rows = (await viewRows()).filter((r) => r.group_key.startsWith('["ack-'));
      expect(rows.filter((r) => r.late_refused !== '0').map((r) => `${r.start} ${r.group_key}: ${r.late_refused} refused`)).toEqual([]);
      expect(new Map(rows.map((r) => [`${r.size_ms}/${WINDOW.slide}/${r.start}/${r.group_key}`, { events: Number(r.events), amount: r.amount }]))).toEqual(expected);
    } finally {
      for (const p of processors) if (p.exitCode === null && p.signalCode === null) await terminate(p);
    }
    expect(survivor.exitCode).toBe(0);
  }, 420_000);
});
