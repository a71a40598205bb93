import type { ClickHouseClient } from '@clickhouse/client';
import type { ServerResponse } from 'node:http';
import type { Config, ReportConfig } from '../core/config.ts';
import { recentAlerts } from '../query/alerts.ts';
import { realtimeWindows } from '../query/realtime.ts';
import { reportDay } from '../query/report-day.ts';
import { reportDays } from '../query/report-days.ts';
import { reconSummary, sagaSummary } from '../query/summaries.ts';
import { sendJson } from '../ingest/http/respond.ts';

/** ClickHouse for the page, or why there is none (a standalone gateway without CLICKHOUSE_URL, say). */
export type UiClickHouse = { client: ClickHouseClient } | { unavailable: string };

export type UiApiDeps = { config: Config; clickhouse: UiClickHouse };

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** `asOf` as ISO-8601 or epoch ms; undefined when absent, NaN when unreadable. */
function instant(text: string | null): number | undefined {
  if (text === null || text === '') return undefined;
  return /^\d+$/.test(text) ? Number(text) : Date.parse(text);
}

/** A table a role creates when it first runs (realtime_latest, by the processor): missing means nothing to show yet. */
const isMissingTable = (err: unknown): boolean => {
  const e = err as { type?: string; code?: string };
  return e?.type === 'UNKNOWN_TABLE' || e?.code === '60';
};

async function orEmpty<T>(read: Promise<T>, empty: T): Promise<T> {
  try {
    return await read;
  } catch (err) {
    if (isMissingTable(err)) return empty;
    throw err;
  }
}

const describeReport = (r: ReportConfig) => ({
  name: r.name,
  types: r.types,
  timeZone: r.timeZone,
  groupBy: r.groupBy,
  measures: Object.keys(r.measures),
  windows: r.windows,
});

/**
 * The JSON API behind the page (README "The page"), GET only:
 *   /ui/api/reports
 *   /ui/api/reports/<report>/days
 *   /ui/api/reports/<report>/days/<YYYY-MM-DD>[?asOf=<ISO-8601 | epoch ms>]
 *   /ui/api/reports/<report>/realtime
 *   /ui/api/alerts
 *   /ui/api/sagas
 *   /ui/api/reconciliation
 * The figures come from src/query, the same code `tidemark report` prints from.
 */
export async function handleUiApi(res: ServerResponse, url: URL, deps: UiApiDeps): Promise<void> {
  const parts = url.pathname.slice('/ui/api/'.length).split('/').map(decodeURIComponent);
  if (!('client' in deps.clickhouse)) return sendJson(res, 503, { error: deps.clickhouse.unavailable });
  const { client } = deps.clickhouse;
  const db = deps.config.clickhouse.database;
  const limit = Math.min(Math.max(Number(url.searchParams.get('limit') ?? '') || 50, 1), 500);
  const [head, name, sub, day] = parts;
  if (head === 'alerts' && parts.length === 1) return sendJson(res, 200, { alerts: await orEmpty(recentAlerts(client, db, limit), []) });
  if (head === 'sagas' && parts.length === 1) return sendJson(res, 200, await orEmpty(sagaSummary(client, db), { byStatus: {}, parked: [] }));
  if (head === 'reconciliation' && parts.length === 1) return sendJson(res, 200, await orEmpty(reconSummary(client, db), { byStatus: {}, open: [], lastRuns: [] }));
  if (head !== 'reports') return sendJson(res, 404, { error: `no route ${url.pathname}` });
  if (parts.length === 1) return sendJson(res, 200, { reports: deps.config.reports.map(describeReport) });
  const report = deps.config.reports.find((r) => r.name === name);
  if (!report) return sendJson(res, 404, { error: `no report "${name}" in the configuration` });
  if (sub === 'days' && parts.length === 3) return sendJson(res, 200, { report: report.name, days: await reportDays(client, db, report.name, limit) });
  if (sub === 'realtime' && parts.length === 3) return sendJson(res, 200, { report: report.name, windows: await orEmpty(realtimeWindows(client, db, report.name, limit), []) });
  if (sub === 'days' && parts.length === 4 && day !== undefined) {
    if (!DAY.test(day)) return sendJson(res, 400, { error: `"${day}" is not a day (YYYY-MM-DD)` });
    const asOf = instant(url.searchParams.get('asOf'));
    if (asOf !== undefined && Number.isNaN(asOf)) return sendJson(res, 400, { error: 'asOf: not an ISO-8601 time or epoch milliseconds' });
    const { revisions, checks } = await reportDay(client, db, report, day, { asOf, history: true });
    const groups = checks.map((check) => {
      const mine = revisions.filter((r) => r.groupKey === check.groupKey);
      const latest = mine[mine.length - 1]!;
      return { groupKey: check.groupKey, group: latest.group, label: check.label, latest, agreesWithEvents: check.agrees, revisions: mine };
    });
    return sendJson(res, 200, { report: report.name, day, timeZone: report.timeZone, asOf: asOf === undefined ? null : new Date(asOf).toISOString(), measures: Object.keys(report.measures), groups });
  }
  return sendJson(res, 404, { error: `no route ${url.pathname}` });
}
