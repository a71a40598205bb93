import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { testConfig } from '../harness/config.ts';
import { closeTestClickHouse, openTestClickHouse, type TestClickHouse } from '../harness/clickhouse.ts';
import { replaceRealtimeView } from '../../src/sinks/clickhouse/realtime-table.ts';

type Target = { rawSql: string; datasource: { type: string; uid: string } };
type Panel = { title: string; type: string; datasource: { uid: string }; targets: Target[] };
type Dashboard = { panels: Panel[]; templating: { list: Array<{ name: string; query: string; datasource: { uid: string } }> } };

const dashboard = JSON.parse(readFileSync('deploy/grafana/dashboards/tidemark.json', 'utf8')) as Dashboard;
const provisioned = parse(readFileSync('deploy/grafana/provisioning/datasources/clickhouse.yaml', 'utf8')) as { datasources: Array<{ uid: string; type: string; jsonData: Record<string, unknown>; secureJsonData: Record<string, string> }> };

const DAY = '2026-11-20';
const FROM = Date.parse('2026-11-01T00:00:00Z');
const TO = Date.parse('2026-12-01T00:00:00Z');
const VARS: Record<string, string> = { report: 'revenue', measure: 'amount' };

/**
 * What the ClickHouse plugin sends for a panel's SQL: its macros ($__timeFilter, $__dateFilter,
 * $__fromTime, $__toTime) as the plugin expands them, the dashboard variables substituted, and the
 * `tidemark` database replaced by the test's own.
 */
function expand(sql: string, db: string): string {
  const s = (ms: number) => Math.floor(ms / 1000);
  const date = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const out = sql
    .replace(/\$__timeFilter\(([^)]+)\)/g, (_m, col: string) => `${col} >= toDateTime(${s(FROM)}) AND ${col} <= toDateTime(${s(TO)})`)
    .replace(/\$__dateFilter\(([^)]+)\)/g, (_m, col: string) => `${col} >= toDate('${date(FROM)}') AND ${col} <= toDate('${date(TO)}')`)
    .replace(/\$__fromTime\b/g, `toDateTime(${s(FROM)})`)
    .replace(/\$__toTime\b/g, `toDateTime(${s(TO)})`)
    .replace(/\$\{(\w+)\}|\$(\w+)/g, (m, a: string | undefined, b: string | undefined) => VARS[a ?? b ?? ''] ?? m)
    .replace(/\btidemark\./g, `${db}.`);
  expect(out, 'a macro or variable the test does not know').not.toContain('$');
  return out;
}

let ch: TestClickHouse;

const at = (iso: string) => Date.parse(iso);
const revision = (group: string, rev: number, status: string, amount: string, knownAt: string, late = 0) => ({
  report: 'revenue', day: DAY, group_key: JSON.stringify([group]), group: { source: group }, revision: rev, status, reason: rev === 1 ? 'new' : 'late',
  computed_at: at(knownAt), known_at: at(knownAt), events: rev, late_events: late, measures: { amount, orders: String(rev) },
});

beforeAll(async () => {
  ch = await openTestClickHouse();
  const insert = (table: string, values: object[]) => ch.client.insert({ table: `${ch.db}.${table}`, values, format: 'JSONEachRow' });
  await insert('report_revisions', [
    revision('store-9', 1, 'preliminary', '129.9', '2026-11-20T18:00:00Z'),
    revision('store-9', 2, 'final', '150', '2026-11-24T00:00:00Z', 1),
    revision('store-17', 1, 'preliminary', '50', '2026-11-20T18:00:00Z'),
  ]);
  await insert('delay_stats', [
    { computed_at: at('2026-11-20T12:00:00Z'), source: 'store-9', window_label: '5m', window_ms: 300_000, events: 10, late: 2, late_share: 0.2, p50_ms: 1000, p95_ms: 7000, p99_ms: 9000, worst_ms: 9500 },
    { computed_at: at('2026-11-20T12:00:00Z'), source: 'store-9', window_label: '1h', window_ms: 3_600_000, events: 99, late: 9, late_share: 0.09, p50_ms: 1, p95_ms: 2, p99_ms: 3, worst_ms: 4 },
  ]);
  await insert('alerts', [{
    id: 'a-1', kind: 'DelayedEvent', source: 'store-9', sla: 'delay', subject: 'alerts.DelayedEvent.store-9',
    at: at('2026-11-20T12:00:00Z'), raised_at: at('2026-11-20T12:00:05Z'), stored_at: at('2026-11-20T12:00:05Z'), seq: 1,
    payload: JSON.stringify({ message: '2 event(s) from store-9 exceeded the 60m delay SLA' }),
  }]);
  await replaceRealtimeView(ch.client, ch.db, testConfig({ reports: [{ name: 'revenue', types: ['sale'], groupBy: ['source'], measures: { amount: { fn: 'sum', field: 'amount' } }, windows: [{ size: '1h', slide: '5m' }] }] }).reports);
}, 60_000);

afterAll(async () => {
  await ch?.dispose();
  await closeTestClickHouse();
});

const run = async (sql: string) => (await (await ch.client.query({ query: expand(sql, ch.db), format: 'JSONEachRow' })).json<Record<string, unknown>>());
const panel = (title: RegExp) => {
  const found = dashboard.panels.find((p) => title.test(p.title));
  expect(found, String(title)).toBeDefined();
  return found!;
};

describe('the Grafana dashboard (deploy/grafana)', () => {
  it('reads through the provisioned ClickHouse data source, whose password comes from the environment', () => {
    const [source] = provisioned.datasources;
    expect(source).toMatchObject({ type: 'grafana-clickhouse-datasource', uid: 'tidemark-clickhouse', jsonData: { host: 'clickhouse', port: 8123, protocol: 'http', defaultDatabase: 'tidemark' } });
    expect(source!.secureJsonData.password).toBe('$CLICKHOUSE_PASSWORD');
    const uses = [...dashboard.panels.flatMap((p) => [p.datasource.uid, ...p.targets.map((t) => t.datasource.uid)]), ...dashboard.templating.list.map((v) => v.datasource.uid)];
    expect(new Set(uses)).toEqual(new Set(['tidemark-clickhouse']));
    const compose = readFileSync('docker-compose.yml', 'utf8');
    expect(compose).toContain('./deploy/grafana/provisioning:/etc/grafana/provisioning:ro');
    expect(compose).toContain('GF_INSTALL_PLUGINS: grafana-clickhouse-datasource');
  });

  it('runs every panel and variable query against chDB, macros and variables substituted', async () => {
    const queries = [...dashboard.templating.list.map((v) => v.query), ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.rawSql))];
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(6);
    for (const sql of queries) await expect(run(sql), sql).resolves.toBeInstanceOf(Array);
    expect(await run(dashboard.templating.list.find((v) => v.name === 'measure')!.query)).toEqual([{ measure: 'amount' }, { measure: 'orders' }]);
  }, 120_000);

  it('shows flash vs final, readable groups, late share, delay p95 and alerts from the stored rows', async () => {
    expect(await run(panel(/Flash vs final/).targets[0]!.rawSql)).toEqual([{ time: '2026-11-20 00:00:00', flash: 179.9, latest: 200, final: 150 }]);
    const latest = await run(panel(/Latest figures by group/).targets[0]!.rawSql);
    expect(latest.map((r) => [r.group_name, r.figure, r.status, r.revision])).toEqual([['store-17', '50', 'preliminary', 1], ['store-9', '150', 'final', 2]]);
    expect((await run(panel(/Revision timeline/).targets[0]!.rawSql)).filter((r) => r.group_name === 'store-9').map((r) => r.figure)).toEqual([129.9, 150]);
    expect(await run(panel(/Late share/).targets[0]!.rawSql)).toEqual([{ time: '2026-11-20 12:00:00.000', source: 'store-9', late_share: 0.2 }]);
    expect(await run(panel(/Late events per day/).targets[0]!.rawSql)).toEqual([{ time: '2026-11-20 00:00:00', late_share: 1 / 3 }]);
    expect(await run(panel(/Delay p95/).targets[0]!.rawSql)).toEqual([{ time: '2026-11-20 12:00:00.000', source: 'store-9', p95_seconds: 7 }]);
    expect(await run(panel(/Alerts/).targets[0]!.rawSql)).toMatchObject([{ kind: 'DelayedEvent', source: 'store-9', detail: '2 event(s) from store-9 exceeded the 60m delay SLA' }]);
  });
});
