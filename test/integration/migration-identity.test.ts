import { afterAll, describe, expect, it } from 'vitest';
import type { ClickHouseClient } from '@clickhouse/client';
import { migrate } from '../../src/clickhouse/migrations.ts';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { dailyFigures } from '../../src/sinks/clickhouse/daily-figures.ts';
import { insertEvents } from '../../src/sinks/clickhouse/events-table.ts';
import { closeTestClickHouse, openTestClickHouse, type TestClickHouse } from '../harness/clickhouse.ts';
import { BEFORE, days, oldEvents, report, START } from '../support/old-events.ts';

async function figures(ch: TestClickHouse, on: string[]): Promise<unknown[]> {
  return Promise.all(on.map(async (day) => [day, (await dailyFigures(ch.client, ch.db, report, day)).sort((a, b) => a.groupKey.localeCompare(b.groupKey))]));
}

const rows = async <T>(client: ClickHouseClient, query: string, params: Record<string, unknown> = {}): Promise<T[]> =>
  (await client.query({ query, query_params: params, format: 'JSONEachRow' })).json<T>();

async function sortingKey(ch: TestClickHouse): Promise<string | undefined> {
  const [row] = await rows<{ sorting_key: string }>(ch.client, 'SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = {name:String}', { db: ch.db, name: 'events' });
  return row?.sorting_key;
}

const tables = async (ch: TestClickHouse): Promise<string[]> =>
  (await rows<{ name: string }>(ch.client, 'SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name', { db: ch.db })).map((r) => r.name);

const opened: TestClickHouse[] = [];

afterAll(async () => {
  for (const ch of opened) await ch.dispose();
  await closeTestClickHouse();
});

/** A database of the test's own as the previous version leaves it, with its figures. */
async function oldDatabase(): Promise<{ ch: TestClickHouse; batches: TidemarkEvent[][]; before: unknown[] }> {
  const ch = await openTestClickHouse(BEFORE);
  opened.push(ch);
  expect(await sortingKey(ch)).toBe('type, occurred_at, id');
  const batches = oldEvents();
  for (const batch of batches) await insertEvents(ch.client, ch.db, batch);
  const before = await figures(ch, days(batches));
  expect((before as Array<[string, unknown[]]>).every(([, groups]) => groups.length > 0)).toBe(true);
  return { ch, batches, before };
}

/** An empty table `name` in `ch` shaped as the current version's events (keyed by source and id), as a rebuild makes it. */
async function createNewEventsTable(ch: TestClickHouse, name: string): Promise<void> {
  const fresh = await openTestClickHouse();
  opened.push(fresh);
  await ch.client.command({ query: `CREATE TABLE ${ch.db}.${name} AS ${fresh.db}.events` });
}

const AFTER_ID = 'occurred_at, received_at, delay_ms, source, type, key, data, nums, seq';
const COLUMNS = `id, ${AFTER_ID}`;

/** What the rebuild copies: every row of `from` (or those `where` keeps) into `to`, an id the gateway made from the sequence moved to ~INGEST-<seq>. */
const copyRekeyed = (ch: TestClickHouse, from: string, to: string, where = '') =>
  ch.client.command({ query: `INSERT INTO ${ch.db}.${to} (${COLUMNS}) SELECT if(id = concat('INGEST-', toString(seq)), concat('~', id), id), ${AFTER_ID} FROM ${ch.db}.${from} ${where}` });

/** Migration 8 is done: events keyed by source and id, every figure as before, the rebuild table gone. */
async function expectRebuilt(ch: TestClickHouse, batches: TidemarkEvent[][], before: unknown[]): Promise<void> {
  expect(await sortingKey(ch)).toBe('type, occurred_at, source, id');
  expect(await figures(ch, days(batches))).toEqual(before);
  expect(await tables(ch)).not.toContain('events_rekey');
}

describe('migration 8: events keyed by (source, id)', () => {
  it('rebuilds events of the previous version in place: every figure unchanged, nothing lost, generated ids in the reserved namespace', async () => {
    const { ch, batches, before } = await oldDatabase();
    const storedBefore = await rows<{ n: string }>(ch.client, `SELECT count() AS n FROM ${ch.db}.events FINAL`);
    const result = await migrate(ch.client, ch.db, { until: 8 });
    expect(result.applied).toEqual(['8 events keyed by (source, id)']);
    await expectRebuilt(ch, batches, before);
    expect(await rows<{ n: string }>(ch.client, `SELECT count() AS n FROM ${ch.db}.events FINAL`)).toEqual(storedBefore);

    // an event is found by its identity; an id the gateway made from the sequence moved to ~INGEST-<seq>
    const generated = batches[0]![0]!;
    const find = (source: string, id: string) => rows<{ seq: string }>(ch.client, `SELECT seq FROM ${ch.db}.events FINAL WHERE source = {source:String} AND id = {id:String}`, { source, id });
    expect(await find(generated.source, `~${generated.id}`)).toEqual([{ seq: String(generated.seq) }]);
    expect(await find(generated.source, generated.id)).toEqual([]);
    expect(await find('till-b', 'till-b-0-1')).toEqual([{ seq: '2' }]);

    // the merge setting of migration 7 survives the rebuild
    const [create] = await rows<{ statement: string }>(ch.client, `SHOW CREATE TABLE ${ch.db}.events`);
    expect(create!.statement).toContain('merge_selector_base = 20');

    // run again: nothing to do, nothing changed; and two sources' id "0" at one instant are two events now
    expect((await migrate(ch.client, ch.db, { until: 8 })).applied).toEqual([]);
    const at = START + 3_600_000;
    const twin = (source: string, seq: number): TidemarkEvent => ({ id: '0', type: 'sale', source, key: null, occurredAt: at, receivedAt: at, data: { amount: '1' }, seq });
    await insertEvents(ch.client, ch.db, [twin('till-a', 9_001), twin('till-b', 9_002), twin('till-a', 9_003)]);
    const twins = await rows<{ source: string; seq: string }>(ch.client, `SELECT source, seq FROM ${ch.db}.events FINAL WHERE id = '0' ORDER BY source`);
    expect(twins).toEqual([{ source: 'till-a', seq: '9001' }, { source: 'till-b', seq: '9002' }]);
  }, 90_000);

  it('finishes after a crash before the exchange: a silent half-filled rebuild table is dropped and the rebuild starts over', async () => {
    const { ch, batches, before } = await oldDatabase();
    await createNewEventsTable(ch, 'events_rekey');
    await ch.client.command({ query: `INSERT INTO ${ch.db}.events_rekey (${COLUMNS}) SELECT id, occurred_at, received_at, delay_ms, source, type, key, '{"amount":"999"}', map('amount', 999), seq FROM ${ch.db}.events LIMIT 5` });
    await migrate(ch.client, ch.db, { until: 8, staleAfterMs: 0 });
    await expectRebuilt(ch, batches, before);
  }, 90_000);

  it('waits while another run rebuilds, and returns once it has', async () => {
    const { ch, batches, before } = await oldDatabase();
    // the other run has claimed the rebuild and not written yet: well within the 2 minutes a stalled run is given
    await createNewEventsTable(ch, 'events_rekey');
    let swapping = false;
    const waiting = migrate(ch.client, ch.db, { until: 8 }).then((result) => ({ result, swapping }));
    // the waiting run must leave the claimed table alone: were it dropped, this insert would fail
    await copyRekeyed(ch, 'events', 'events_rekey');
    swapping = true;
    await ch.client.command({ query: `EXCHANGE TABLES ${ch.db}.events AND ${ch.db}.events_rekey` });
    // once swapped, whoever sees the old table first copies it over and drops it: the waiting run may well be first
    await ch.client.command({ query: `DROP TABLE IF EXISTS ${ch.db}.events_rekey SYNC` });
    const { result, swapping: swappedFirst } = await waiting;
    expect(swappedFirst).toBe(true);
    expect(result.applied).toEqual(['8 events keyed by (source, id)']);
    expect(await figures(ch, days(batches))).toEqual(before);
  }, 90_000);

  it('lets two callers in one process migrate at once', async () => {
    const { ch, batches, before } = await oldDatabase();
    const results = await Promise.all([migrate(ch.client, ch.db, { until: 8 }), migrate(ch.client, ch.db, { until: 8 })]);
    expect(results.map((r) => r.applied)).toEqual([['8 events keyed by (source, id)'], []]);
    expect(await figures(ch, days(batches))).toEqual(before);
    expect(await tables(ch)).not.toContain('events_rekey');
  }, 90_000);

  it('finishes after a crash past the exchange: the old table is copied over once more and dropped', async () => {
    const { ch, batches, before } = await oldDatabase();
    // the state right after EXCHANGE TABLES, before any row was copied: the new key under `events`, the old table aside
    await ch.client.command({ query: `RENAME TABLE ${ch.db}.events TO ${ch.db}.events_rekey` });
    await createNewEventsTable(ch, 'events');
    await copyRekeyed(ch, 'events_rekey', 'events', 'WHERE seq % 2 = 0');
    await migrate(ch.client, ch.db, { until: 8 });
    await expectRebuilt(ch, batches, before);
  }, 90_000);
});
