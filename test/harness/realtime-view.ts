import type { ClickHouseClient } from '@clickhouse/client';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { expect } from 'vitest';
import { openArbiter, type Arbiter, type FenceValue } from '../../src/processors/realtime/fence.ts';
import { centsText, referenceWindows, type ReferenceEvent } from '../support/window-reference.ts';
import { waitFor } from './streams.ts';

/**
 * What the realtime end-to-end tests (crash, exactly once, stall) share: one report of sales per
 * store in 10-minute windows every 5 minutes, stores sending in occurredAt order, the view read
 * back from ClickHouse and held to the independent reference of test/support/window-reference.
 */
export const REALTIME_WINDOW = { size: 600_000, slide: 300_000 };

export const realtimeSalesReport = {
  name: 'rt',
  types: ['sale'],
  groupBy: ['source'],
  measures: { amount: { fn: 'sum', field: 'amount' }, orders: { fn: 'count' } },
  windows: [{ size: '10m', slide: '5m' }],
};

export type SaleMessage = { subject: string; body: string };

/** Stores `<tag>-0`, `<tag>-1`, … each sending `perStore` sales in occurredAt order over the last 40 minutes, the stores interleaved. */
export function orderedSales(now: number, stores: number, perStore: number, tag: string): { events: ReferenceEvent[]; messages: SaleMessage[] } {
  const events: ReferenceEvent[] = [];
  const messages: SaleMessage[] = [];
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

/** Publishes `messages` as a steady flow (200 every 250 ms), so that something done meanwhile lands in the middle of it. */
export function publishSteadily(nc: NatsConnection, messages: readonly SaleMessage[]): { sent: () => number; done: Promise<void> } {
  let sent = 0;
  const done = (async () => {
    for (; sent < messages.length; sent += 200) {
      for (const msg of messages.slice(sent, sent + 200)) nc.publish(msg.subject, msg.body);
      await nc.flush();
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return { sent: () => sent, done };
}

export type ViewRow = { size_ms: string; start: string; group_key: string; events: string; amount: string; late_refused: string; closed: number; instances: string };

/** The rows of `realtime_latest` for the stores of `tag`. */
export async function realtimeViewRows(client: ClickHouseClient, db: string, tag: string): Promise<ViewRow[]> {
  const rows = await (await client.query({ query: `SELECT size_ms, toUnixTimestamp64Milli(window_start) AS start, group_key, events, measures['amount'] AS amount, late_refused, closed, instances FROM ${db}.realtime_latest`, format: 'JSONEachRow' })).json<ViewRow>();
  return rows.filter((r) => r.group_key.startsWith(`["${tag}-`));
}

/**
 * Waits until the view accounts for every event of `tag` (held or refused), then holds every
 * window to the reference: nothing refused, every count and amount equal.
 */
export async function expectViewEqualsReference(client: ClickHouseClient, db: string, events: readonly ReferenceEvent[], tag: string): Promise<ViewRow[]> {
  const expected = referenceWindows([REALTIME_WINDOW], events);
  const total = [...expected.values()].reduce((n, f) => n + f.events, 0);
  let seen = '';
  await waitFor(async () => {
    const rows = await realtimeViewRows(client, db, tag);
    seen = `${rows.reduce((n, r) => n + Number(r.events), 0)} of ${total}, ${rows.reduce((n, r) => n + Number(r.late_refused), 0)} refused`;
    return rows.reduce((n, r) => n + Number(r.events) + Number(r.late_refused), 0) >= total;
  }, 60_000, 'the realtime view to account for every event').catch((err: Error) => {
    throw new Error(`${err.message} (${seen})`);
  });
  const rows = await realtimeViewRows(client, db, tag);
  expect(rows.filter((r) => r.late_refused !== '0').map((r) => `${r.start} ${r.group_key}: ${r.late_refused} refused`)).toEqual([]);
  expect(new Map(rows.map((r) => [`${r.size_ms}/${REALTIME_WINDOW.slide}/${r.start}/${r.group_key}`, { events: Number(r.events), amount: r.amount }]))).toEqual(expected);
  return rows;
}

export type Checkpoint = { instance: string; folded: Array<[string, string]>; watermarks: Record<string, string>; emitted_at: string; final: number };

/** The database and its tables are made by the first processor: before that, there is nothing to read. */
const notMadeYet = (err: unknown): boolean => {
  const e = err as { type?: string; code?: string };
  return ['UNKNOWN_TABLE', 'UNKNOWN_DATABASE'].includes(e?.type ?? '') || ['60', '81'].includes(e?.code ?? '');
};

/** Each processor instance's checkpoint row (size_ms 0): which message ranges it has folded, its watermarks, whether it stopped; none before a processor made the table. */
export async function realtimeCheckpoints(client: ClickHouseClient, db: string): Promise<Checkpoint[]> {
  try {
    return await (await client.query({ query: `SELECT instance, folded, watermarks, toUnixTimestamp64Milli(emitted_at) AS emitted_at, final FROM ${db}.realtime_windows FINAL WHERE size_ms = 0 AND report = ''`, format: 'JSONEachRow' })).json<Checkpoint>();
  } catch (err) {
    if (notMadeYet(err)) return [];
    throw err;
  }
}

/** The highest EVENTS sequence a checkpoint names as folded (0 for none). */
export const highestFolded = (c: Checkpoint | undefined): number => Math.max(0, ...(c?.folded ?? []).map(([, to]) => Number(to)));

/** The processors' ack floor on EVENTS: every message up to it is acked. */
export const processorAckFloor = async (jsm: JetStreamManager): Promise<number> => (await jsm.consumers.info('EVENTS', 'processor')).ack_floor.stream_seq;

/** Every EVENTS message delivered to the processors and acked: every fold that counts is written (an ack waits for the checkpoint naming it). */
export const waitForEveryEventAcked = (jsm: JetStreamManager, timeoutMs: number): Promise<boolean> =>
  waitFor(async () => {
    const info = await jsm.consumers.info('EVENTS', 'processor');
    return info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.stream_seq > 0;
  }, timeoutMs, 'every EVENTS message acked');

/**
 * Reads every processor instance's key in the realtime fence bucket (fence.ts), listed from the
 * bucket's stream as the processors list it: `kv.keys()` runs an ordered consumer that on a loaded
 * machine sometimes never finished, and a test waiting on it hung. Opens (or makes) the bucket once.
 */
export function fenceKeyReader(js: JetStreamClient): () => Promise<Map<string, FenceValue>> {
  let arbiter: Promise<Arbiter> | undefined;
  return async () => {
    arbiter ??= openArbiter(js, 1).catch((err: unknown) => {
      arbiter = undefined;
      throw err;
    });
    return new Map([...(await (await arbiter).others(''))].map(([key, entry]) => [key, entry.value]));
  };
}
