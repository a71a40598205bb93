import type { Logger } from 'pino';
import type { Clock } from '../core/time.ts';
import type { Alert } from './alerts.ts';
import type { AlertPublisher } from '../nats/alert-guard.ts';
import type { MonitorMetrics } from './metrics.ts';
import type { MonitorState } from './state.ts';

export type OutboxDeps = { state: MonitorState; publish: AlertPublisher; clock: Clock; metrics: MonitorMetrics; logger: Logger };

type WithOutbox = { outbox: Alert[] };

/**
 * Publishes a state document's outbox, then removes what was published (other alerts
 * may have joined meanwhile). The outbox is in KV before this runs, so a failure here
 * loses nothing: the next tick publishes it, and the guard keeps each alert once.
 */
export async function flushOutbox(deps: OutboxDeps, key: string, outbox: readonly Alert[]): Promise<void> {
  if (outbox.length === 0) return;
  for (const alert of outbox) {
    const outcome = await deps.publish(alert, deps.clock.now());
    deps.metrics.alert(alert.kind, outcome);
    if (outcome === 'published') deps.logger.info({ alert: { id: alert.id, kind: alert.kind, source: alert.source, at: new Date(alert.at).toISOString() } }, alert.message);
  }
  const done = new Set(outbox.map((a) => a.id));
  await deps.state.mutate<WithOutbox>(key, () => null, (s) => (s.outbox.some((a) => done.has(a.id)) ? { ...s, outbox: s.outbox.filter((a) => !done.has(a.id)) } : null));
}
