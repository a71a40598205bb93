import type { ClickHouseClient } from '@clickhouse/client';
import type { ReportConfig } from '../core/config.ts';
import { sameMeasures } from '../core/decimal.ts';
import { dailyFigures } from '../sinks/clickhouse/daily-figures.ts';
import { publishedRevisions, type PublishedRevision } from './revisions.ts';

/** Whether a group's latest published figure is what its raw events say (received by `asOf`, if given). */
export type GroupCheck = { groupKey: string; label: string; agrees: boolean; fromEvents: Record<string, string> };

export type ReportDay = { revisions: PublishedRevision[]; checks: GroupCheck[] };

/**
 * A report day as `tidemark report` and the page show it: the published revisions (every one
 * with `history`, else each group's latest; as known at `asOf` if given), and per group whether
 * the latest agrees with a recomputation from the raw events (SPEC §4, as-of from both sides).
 */
export async function reportDay(client: ClickHouseClient, db: string, report: ReportConfig, day: string, options: { asOf?: number | undefined; history?: boolean } = {}): Promise<ReportDay> {
  const { asOf } = options;
  const revisions = await publishedRevisions(client, db, report.name, day, { ...(asOf === undefined ? {} : { asOf }), history: options.history ?? false });
  const recomputed = new Map((await dailyFigures(client, db, report, day, asOf)).map((f) => [f.groupKey, f]));
  const latest = new Map<string, PublishedRevision>();
  for (const r of revisions) if ((latest.get(r.groupKey)?.revision ?? 0) < r.revision) latest.set(r.groupKey, r);
  const checks = [...latest.values()].map((r) => {
    const raw = recomputed.get(r.groupKey);
    return { groupKey: r.groupKey, label: r.label, agrees: raw !== undefined && sameMeasures(raw.measures, r.measures), fromEvents: raw?.measures ?? {} };
  });
  return { revisions, checks };
}
