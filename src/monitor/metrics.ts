import { Counter, Gauge, type Registry } from 'prom-client';
import { formatDuration } from '../core/duration.ts';
import type { WindowStats } from './slices.ts';

export type MonitorMetrics = {
  events: (count: number) => void;
  alert: (kind: string, outcome: 'published' | 'duplicate') => void;
  /** delivered; retried: another POST within a round; deferred: the round failed, the alert comes back later; failed: refused for good; undelivered: retryFor ran out */
  webhook: (outcome: 'delivered' | 'retried' | 'deferred' | 'failed' | 'undelivered') => void;
  /** events whose source got no SLA state because the SLA is at monitor.maxSourcesPerSla (`state`: `<kind>.<sla>`) */
  sourcesCut: (state: string, events: number) => void;
  /** source states a glob SLA forgot after monitor.sourceIdleExpiry */
  sourcesForgotten: (sla: string, states: number) => void;
  /** replaces every window gauge: a source gone quiet leaves the window, not a stale value */
  windows: (stats: ReadonlyArray<{ windowMs: number; stats: readonly WindowStats[] }>) => void;
};

function createMonitorMetrics(registry: Registry, maxSources: number): MonitorMetrics {
  const registers = [registry];
  const events = new Counter({ name: 'tidemark_monitor_events_total', help: 'Events checked against the delay SLAs', registers });
  const alerts = new Counter({ name: 'tidemark_alerts_total', help: 'Alerts the monitor tried to raise, by kind and outcome (duplicate: already raised elsewhere)', labelNames: ['kind', 'outcome'] as const, registers });
  const webhooks = new Counter({ name: 'tidemark_webhook_deliveries_total', help: 'Webhook delivery outcomes: delivered, retried (another POST in a round), deferred (round failed; redelivered later), failed (refused for good), undelivered (retryFor ran out)', labelNames: ['outcome'] as const, registers });
  const quantile = new Gauge({ name: 'tidemark_delay_seconds', help: 'receivedAt minus occurredAt over a sliding window of receivedAt, all monitor instances', labelNames: ['source', 'window', 'quantile'] as const, registers });
  const lateRatio = new Gauge({ name: 'tidemark_delay_late_ratio', help: 'Share of events over their SLA maxDelay in a sliding window', labelNames: ['source', 'window'] as const, registers });
  const cut = new Counter({ name: 'tidemark_monitor_sources_cut_total', help: 'Events of sources beyond monitor.maxSourcesPerSla: stored and reported, not checked against the SLA (state: d late, e every, y dailyBy, then the SLA)', labelNames: ['state'] as const, registers });
  const forgotten = new Counter({ name: 'tidemark_monitor_sources_forgotten_total', help: 'SLA states of glob sources forgotten after monitor.sourceIdleExpiry without events', labelNames: ['sla'] as const, registers });
  const metricsCut = new Gauge({ name: 'tidemark_delay_sources_cut', help: 'Sources left out of the per-source delay gauges (over monitor.maxMetricSources), by window; their events are in source="_other"', labelNames: ['window'] as const, registers });
  const windowEvents = new Gauge({ name: 'tidemark_delay_window_events', help: 'Events received in a sliding window', labelNames: ['source', 'window'] as const, registers });
  return {
    events: (count) => events.inc(count),
    alert: (kind, outcome) => alerts.inc({ kind, outcome }),
    webhook: (outcome) => webhooks.inc({ outcome }),
    sourcesCut: (state, count) => cut.inc({ state }, count),
    sourcesForgotten: (sla, count) => forgotten.inc({ sla }, count),
    windows: (all) => {
      quantile.reset();
      lateRatio.reset();
      windowEvents.reset();
      metricsCut.reset();
      for (const { windowMs, stats } of all) {
        const window = formatDuration(windowMs);
        // series per source are the sender's choice: the busiest keep theirs, the rest are summed into one
        const ranked = stats.length > maxSources ? [...stats].sort((a, b) => b.events - a.events) : stats;
        const rest = ranked.slice(maxSources);
        metricsCut.set({ window }, rest.length);
        if (rest.length) windowEvents.set({ source: '_other', window }, rest.reduce((n, s) => n + s.events, 0));
        for (const s of ranked.slice(0, maxSources)) {
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

export function monitorMetricsFor(registry: Registry, maxSources = 500): MonitorMetrics {
  let metrics = byRegistry.get(registry);
  if (!metrics) {
    metrics = createMonitorMetrics(registry, maxSources);
    byRegistry.set(registry, metrics);
  }
  return metrics;
}
