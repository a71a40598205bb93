import { Counter, Gauge, type Registry } from 'prom-client';
import { metricsRegistry } from '../../core/metrics.ts';

export type RealtimeMetrics = {
  /** events of a report the realtime view refused because a window they belong to was closed */
  refused: (report: string, count: number) => void;
  /** redelivered EVENTS messages not folded again: this or another instance had folded and written them */
  skipped: (count: number) => void;
  /** events left out of the realtime view because their report held processor.maxRealtimeGroups groups */
  cut: (report: string, count: number) => void;
  /** the most (ms) an event arrived behind the highest occurredAt of its source before it, over the last period */
  disorder: (maxMs: number) => void;
};

function createRealtimeMetrics(registry: Registry): RealtimeMetrics {
  const registers = [registry];
  const refused = new Counter({ name: 'tidemark_realtime_late_refused_total', help: 'Events the realtime view refused as late (a window they belong to was closed); per window in realtime_latest.late_refused', labelNames: ['report'] as const, registers });
  const skipped = new Counter({ name: 'tidemark_realtime_redelivered_skipped_total', help: 'Redelivered EVENTS messages already folded into the realtime view, not counted again', registers });
  const cut = new Counter({ name: 'tidemark_realtime_events_cut_total', help: 'Events left out of the realtime view because their report held processor.maxRealtimeGroups groups (still stored and in the daily view)', labelNames: ['report'] as const, registers });
  const disorder = new Gauge({ name: 'tidemark_realtime_source_disorder_max_seconds', help: 'Over the last 10 s, the most an event reached the realtime view behind the highest occurredAt of its source before it, redeliveries left out (processor.outOfOrderness should cover it)', registers });
  return { disorder: (maxMs) => disorder.set(maxMs / 1_000), refused: (report, count) => refused.inc({ report }, count), skipped: (count) => skipped.inc(count), cut: (report, count) => cut.inc({ report }, count) };
}

const byRegistry = new WeakMap<Registry, RealtimeMetrics>();

/** The realtime metrics registered in `registry`, created on first use (prom-client refuses a name twice). */
export function realtimeMetricsFor(registry: Registry = metricsRegistry): RealtimeMetrics {
  let metrics = byRegistry.get(registry);
  if (!metrics) {
    metrics = createRealtimeMetrics(registry);
    byRegistry.set(registry, metrics);
  }
  return metrics;
}
