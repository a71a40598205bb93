import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/clickhouse/migrations.ts';
import { canonicalJson } from '../../src/core/canonical.ts';
import { groupLabel, namedGroup } from '../../src/core/group-names.ts';
import { closeTestClickHouse, openTestClickHouse } from '../harness/clickhouse.ts';

afterAll(closeTestClickHouse);

/** A revision row as schema version 10 stored it: no `group` column. */
const oldRow = (report: string, groupKey: string, revision: number) => ({
  report, day: '2026-11-20', group_key: groupKey, revision, status: 'preliminary', reason: 'first',
  computed_at: 0, known_at: 0, events: 1, late_events: 0, measures: { amount: '1' },
});

const groupValue = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null), fc.boolean());

describe('named groups', () => {
  it('reads a group as its values, not as the JSON of its key', () => {
    expect(namedGroup(['source'], '["store-9"]')).toEqual({ source: 'store-9' });
    expect(namedGroup(['source', 'data.region'], '["store-9",7]')).toEqual({ source: 'store-9', 'data.region': '7' });
    expect(namedGroup([], '')).toEqual({});
    expect(namedGroup(['source'], '["a",null]')).toEqual({ 1: 'a', 2: 'null' });
    expect(groupLabel('["store-9"]')).toBe('store-9');
    expect(groupLabel('["store-9","TW"]')).toBe('store-9 · TW');
    expect(groupLabel('')).toBe('(all)');
  });

  it('migration 11 names the groups of rows written before it exactly as the processor names new ones, and reruns change nothing', async () => {
    const ch = await openTestClickHouse(10);
    try {
      const samples = fc.sample(fc.array(groupValue, { minLength: 1, maxLength: 3 }), { numRuns: 60, seed: 27 });
      const rows = samples.map((values, i) => oldRow(`r${values.length}`, canonicalJson(values), i + 1));
      rows.push(oldRow('revenue', '["store-9"]', 1), oldRow('revenue', '["store-9"]', 2), oldRow('total', '', 1), oldRow('gone', '["x"]', 1));
      await ch.client.insert({ table: `${ch.db}.report_revisions`, values: rows, format: 'JSONEachRow' });
      const reports = [
        { name: 'revenue', groupBy: ['source'] },
        { name: 'r1', groupBy: ['source'] },
        // a field name with a quote and a backslash: the names reach the statement as literals
        { name: 'r2', groupBy: ['source', "data.o'k\\x"] },
        { name: 'total', groupBy: [] },
        // the config changed since: its keys have one or three values, not two
        { name: 'r3', groupBy: ['a', 'b'] },
      ];
      expect((await migrate(ch.client, ch.db, { reports })).applied).toEqual(['11 readable groups', '12 incremental daily states', '13 realtime fences']);
      const read = async (table: string) => (await (await ch.client.query({
        query: `SELECT report, group_key, group FROM ${ch.db}.${table} ORDER BY report, group_key, revision`, format: 'JSONEachRow',
      })).json<{ report: string; group_key: string; group: Record<string, string> }>());
      const migrated = await read('report_revisions');
      expect(migrated).toHaveLength(rows.length);
      const groupBy = (name: string) => reports.find((r) => r.name === name)?.groupBy ?? [];
      for (const row of migrated) expect(row.group, `${row.report} ${row.group_key}`).toEqual(namedGroup(groupBy(row.report), row.group_key));
      expect(migrated.find((r) => r.report === 'revenue')?.group).toEqual({ source: 'store-9' });
      expect(migrated.find((r) => r.report === 'gone')?.group).toEqual({ 1: 'x' });

      // report_latest has the column too, and SQL can pick a group by name
      const latest = await (await ch.client.query({
        query: `SELECT revision FROM ${ch.db}.report_latest WHERE report = 'revenue' AND group['source'] = 'store-9'`, format: 'JSONEachRow',
      })).json<{ revision: number }>();
      expect(latest).toEqual([{ revision: 2 }]);

      expect((await migrate(ch.client, ch.db, { reports })).applied).toEqual([]);
      expect(await read('report_revisions')).toEqual(migrated);
    } finally {
      await ch.dispose();
    }
  }, 120_000);
});
