import { Counter, Gauge, type Registry } from 'prom-client';
import { formatDuration } from '../core/duration.ts';
import type { WindowStats } from './slices.ts';

export type MonitorMetrics = {
  events: (count: number) => void;
  alert: (kind: string, outcome: 'published' | 'duplicate') => void;
  webhook: (outcome: 'delivered' | 'retried' | 'failed') => void;
  /** replaces every window gauge: a source gone quiet leaves the window, not a stale value */
  windows: (stats: ReadonlyArray<{ windowMs: number; stats: readonly WindowStats[] }>) => void;
};

function createMonitorMetrics(registry: Registry): MonitorMetrics {
  const registers = [registry];
  const events = new Counter({ name: 'tidemark_monitor_events_total', help: 'Events checked against the delay SLAs', registers });
  const alerts = new Counter({ name: 'tidemark_alerts_total', help: 'Alerts the monitor tried to raise, by kind and outcome (duplicate: already raised elsewhere)', labelNames: ['kind', 'outcome'] as const, registers });
  const webhooks = new Counter({ name: 'tidemark_webhook_deliveries_total', help: 'Webhook POST outcomes', labelNames: ['outcome'] as const, registers });
  const quantile = new Gauge({ name: 'tidemark_delay_seconds', help: 'receivedAt minus occurredAt over a sliding window of receivedAt, all monitor instances', labelNames: ['source', 'window', 'quantile'] as const, registers });
  const lateRatio = new Gauge({ name: 'tidemark_delay_late_ratio', help: 'Share of events over their SLA maxDelay in a sliding window', labelNames: ['source', 'window'] as const, registers });
  const windowEvents = new Gauge({ name: 'tidemark_delay_window_events', help: 'Events received in a sliding window', labelNames: ['source', 'window'] as const, registers });
  return {
    events: (count) => events.inc(count),
    alert: (kind, outcome) => alerts.inc({ kind, outcome }),
    webhook: (outcome) => webhooks.inc({ outcome }),
    windows: (all) => {
      quantile.reset();
      lateRatio.reset();
      windowEvents.reset();
      for (const { windowMs, stats } of all) {
        const window = formatDuration(windowMs);
        for (const s of stats) {
          quantile.set({ source: s.source, window, quantile: '0.5' }, s.p50 / 1000);
          quantile.set({ source: s.source, window, quantile: '0.95' }, s.p95 / 1000);
          quantile.set({ source: s.source, window, quantile: '0.99' }, s.p99 / 1000);
          lateRatio.set({ source: s.source, window }, s.lateShare);
          windowEvents.set({ source: s.source, window }, s.events);
        }
      }
    },
  };
}

// prom-client refuses a second metric of one name in a registry, so monitors sharing a registry share one set
const byRegistry = new WeakMap<Registry, MonitorMetrics>();

export function monitorMetricsFor(registry: Registry): MonitorMetrics {
  let metrics = byRegistry.get(registry);
  if (!metrics) {
    metrics = createMonitorMetrics(registry);
    byRegistry.set(registry, metrics);
  }
  return metrics;
}
