import { Counter, Histogram, type Registry } from 'prom-client';
import { metricsRegistry } from '../core/metrics.ts';
import type { DiscrepancyType, Side } from './logic/types.ts';

export type ReconMetrics = {
  records: (name: string, side: Side, count: number) => void;
  /** findings seen for the first time */
  findings: (name: string, mode: 'batch' | 'stream', type: DiscrepancyType) => void;
  actions: (name: string, action: 'healed' | 'queued' | 'alerted') => void;
  batchSeconds: (name: string, seconds: number) => void;
};

function create(registry: Registry): ReconMetrics {
  const registers = [registry];
  const records = new Counter({ name: 'tidemark_recon_records_total', help: 'Feed records taken by streaming reconciliation', labelNames: ['reconciliation', 'side'] as const, registers });
  const findings = new Counter({ name: 'tidemark_recon_discrepancies_total', help: 'Discrepancies found for the first time', labelNames: ['reconciliation', 'mode', 'type'] as const, registers });
  const actions = new Counter({ name: 'tidemark_recon_actions_total', help: 'Heals, manual-queue entries and alerts, each done once', labelNames: ['reconciliation', 'action'] as const, registers });
  const batch = new Histogram({ name: 'tidemark_recon_batch_seconds', help: 'Duration of batch reconciliation runs', labelNames: ['reconciliation'] as const, buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300], registers });
  return {
    records: (reconciliation, side, count) => records.inc({ reconciliation, side }, count),
    findings: (reconciliation, mode, type) => findings.inc({ reconciliation, mode, type }),
    actions: (reconciliation, action) => actions.inc({ reconciliation, action }),
    batchSeconds: (reconciliation, seconds) => batch.observe({ reconciliation }, seconds),
  };
}

/** Registered once in the process registry that `/metrics` serves. */
export const reconMetrics: ReconMetrics = create(metricsRegistry);
