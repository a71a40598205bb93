import { randomBytes } from 'node:crypto';
import type { ReconciliationConfig } from '../core/config.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { insertRuns, type RunRow } from '../sinks/clickhouse/recon-tables.ts';
import { insertOrFile } from '../sinks/clickhouse/refused-rows.ts';
import { actOn, type ActionContext, type ActionOutcome } from './actions.ts';
import { alertIfOver, type ReconAlert } from './alert.ts';
import { findBatchDiscrepancies, type BatchStats } from './batch-find.ts';
import type { Discrepancy, DiscrepancyType } from './logic/types.ts';
import { reconMetrics } from './metrics.ts';

export type BatchRun = {
  runId: string;
  period: string;
  discrepancies: Discrepancy[];
  stats: BatchStats;
  outcome: ActionOutcome;
  alert: ReconAlert | undefined;
};

export const isBatchRecon = (recon: ReconciliationConfig): boolean => recon.a.subject === undefined && recon.b.subject === undefined;

const countOf = (findings: Discrepancy[], type: DiscrepancyType): number => findings.filter((d) => d.type === type).length;

/**
 * One batch reconciliation of a period, recorded in `recon_runs` from start to end
 * (a `running` row, then `succeeded` or `failed` with the error). Findings are stored
 * and acted on (actions.ts), then the alert threshold is checked.
 */
export async function runBatch(ctx: ActionContext, period: string): Promise<BatchRun> {
  const { recon, clickhouse, db, clock, js } = ctx;
  // a run row ClickHouse refuses (an error text it cannot read, say) is filed, never retried for ever
  const writeRun = (row: RunRow) => insertOrFile(js, 'recon_runs', [row], (part) => insertRuns(clickhouse, db, part), clock.now());
  if (!isBatchRecon(recon)) {
    throw new TidemarkError(ErrorCodes.RECON_MODE_UNSUPPORTED, `reconciliation ${recon.name} reads subject feeds; run it with \`tidemark reconcile stream\``);
  }
  const startedAt = clock.now();
  const runId = `batch-${recon.name}-${period}-${startedAt}-${randomBytes(3).toString('hex')}`;
  const base: RunRow = {
    run_id: runId, name: recon.name, period, mode: 'batch', status: 'running', started_at: startedAt, finished_at: startedAt, duration_ms: 0,
    rows_a: 0, rows_b: 0, levels: 0, segments_compared: 0, segments_differing: 0, rows_fetched: 0,
    missing_in_a: 0, missing_in_b: 0, mismatches: 0, duplicates: 0, new_discrepancies: 0, healed: 0, queued: 0, alerted: 0, error: '', version: 1,
  };
  await writeRun(base);
  try {
    const { discrepancies, stats } = await findBatchDiscrepancies(clickhouse, db, recon, period);
    const outcome = await actOn(ctx, discrepancies, { mode: 'batch', runId });
    const alert = await alertIfOver(ctx, period);
    const finishedAt = clock.now();
    reconMetrics.batchSeconds(recon.name, (finishedAt - startedAt) / 1_000);
    await writeRun({
      ...base,
      status: 'succeeded',
      finished_at: finishedAt,
      duration_ms: finishedAt - startedAt,
      rows_a: stats.rowsA,
      rows_b: stats.rowsB,
      levels: stats.levels,
      segments_compared: stats.segmentsCompared,
      segments_differing: stats.segmentsDiffering,
      rows_fetched: stats.rowsFetched,
      missing_in_a: countOf(discrepancies, 'MissingInA'),
      missing_in_b: countOf(discrepancies, 'MissingInB'),
      mismatches: countOf(discrepancies, 'Mismatch'),
      duplicates: countOf(discrepancies, 'Duplicate'),
      new_discrepancies: outcome.fresh,
      healed: outcome.healed,
      queued: outcome.queued,
      alerted: alert ? 1 : 0,
      version: 2,
    });
    return { runId, period, discrepancies, stats, outcome, alert };
  } catch (err) {
    const finishedAt = clock.now();
    // best effort: when ClickHouse itself failed the run, the original error is the one to report
    await writeRun({ ...base, status: 'failed', finished_at: finishedAt, duration_ms: finishedAt - startedAt, error: String((err as Error).message ?? err), version: 2 }).catch(() => undefined);
    throw err;
  }
}
