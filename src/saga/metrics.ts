import { Counter, Histogram, type Registry } from 'prom-client';
import { metricsRegistry } from '../core/metrics.ts';

export type SagaMetrics = {
  started: (saga: string) => void;
  completed: (saga: string) => void;
  compensated: (saga: string) => void;
  parked: (saga: string) => void;
  /** a compare-and-set lost to another writer of the same saga: contention between instances */
  conflict: (saga: string) => void;
  /** from the failure (reply stored, or deadline) to the first undo command stored */
  compensationStart: (saga: string, seconds: number) => void;
};

function createSagaMetrics(registry: Registry): SagaMetrics {
  const registers = [registry];
  const counter = (name: string, help: string) => new Counter({ name, help, labelNames: ['saga'] as const, registers });
  const started = counter('tidemark_saga_started_total', 'Sagas started from a trigger');
  const completed = counter('tidemark_saga_completed_total', 'Sagas whose every step succeeded');
  const compensated = counter('tidemark_saga_compensated_total', 'Sagas that failed and were fully compensated');
  const parked = counter('tidemark_saga_parked_total', 'Sagas parked for manual intervention after a compensation kept failing');
  const conflicts = counter('tidemark_saga_state_conflicts_total', 'Saga state writes that lost a compare-and-set and were re-decided');
  const compensationSeconds = new Histogram({
    name: 'tidemark_saga_compensation_start_seconds',
    help: 'From the failure event to the first compensation command being stored',
    labelNames: ['saga'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers,
  });
  return {
    started: (saga) => started.inc({ saga }),
    completed: (saga) => completed.inc({ saga }),
    compensated: (saga) => compensated.inc({ saga }),
    parked: (saga) => parked.inc({ saga }),
    conflict: (saga) => conflicts.inc({ saga }),
    compensationStart: (saga, seconds) => compensationSeconds.observe({ saga }, Math.max(0, seconds)),
  };
}

// prom-client refuses a second metric of one name in a registry
const byRegistry = new WeakMap<Registry, SagaMetrics>();

export function sagaMetricsFor(registry: Registry = metricsRegistry): SagaMetrics {
  let metrics = byRegistry.get(registry);
  if (!metrics) {
    metrics = createSagaMetrics(registry);
    byRegistry.set(registry, metrics);
  }
  return metrics;
}
