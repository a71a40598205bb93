import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RejectionCode } from './envelope.ts';

export type IngestGateway = 'nats' | 'http';
export type IngestOutcome = 'accepted' | 'rejected' | 'duplicate';

/** A registry with the Node process metrics; tests make their own so counts do not leak between them. */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** The one registry of the process that `/metrics` serves; every role registers its metrics here. */
export const metricsRegistry: Registry = createRegistry();

export type IngestMetrics = {
  events: (gateway: IngestGateway, outcome: IngestOutcome, count?: number) => void;
  /** counts the event as rejected and its code, so the two counters always agree */
  rejected: (gateway: IngestGateway, code: RejectionCode, count?: number) => void;
  /** seconds to validate, publish and get every ack for one batch (NATS) or request (HTTP) */
  batch: (gateway: IngestGateway, seconds: number) => void;
  /** receivedAt − occurredAt in ms; recorded once per accepted event by the gateway that stamps receivedAt */
  delay: (ms: number) => void;
  /** bytes of raw messages the NATS gateway has pulled and not yet handled */
  readAhead: (bytes: number) => void;
};

function createIngestMetrics(registry: Registry): IngestMetrics {
  const registers = [registry];
  const events = new Counter({
    name: 'tidemark_ingest_events_total',
    help: 'Events seen by an ingest gateway, by outcome',
    labelNames: ['gateway', 'outcome'] as const,
    registers,
  });
  const rejections = new Counter({
    name: 'tidemark_ingest_rejections_total',
    help: 'Rejected events by rejection code',
    labelNames: ['code'] as const,
    registers,
  });
  const batchSeconds = new Histogram({
    name: 'tidemark_ingest_batch_seconds',
    help: 'Time to validate, publish and get every ack for one batch or HTTP request',
    labelNames: ['gateway'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const delaySeconds = new Histogram({
    name: 'tidemark_ingest_delay_seconds',
    help: 'receivedAt minus occurredAt of accepted events',
    // late data is the product's subject: buckets reach from a second to a week
    buckets: [1, 5, 15, 60, 300, 900, 3_600, 6 * 3_600, 86_400, 3 * 86_400, 7 * 86_400],
    registers,
  });
  const readAheadBytes = new Gauge({
    name: 'tidemark_ingest_read_ahead_bytes',
    help: 'Bytes of raw INGEST messages the NATS gateway has pulled and not yet handled (at most ingest.readAheadBytes)',
    registers,
  });
  return {
    events: (gateway, outcome, count = 1) => events.inc({ gateway, outcome }, count),
    rejected: (gateway, code, count = 1) => {
      events.inc({ gateway, outcome: 'rejected' }, count);
      rejections.inc({ code }, count);
    },
    batch: (gateway, seconds) => batchSeconds.observe({ gateway }, seconds),
    // an occurredAt within the allowed future skew is on time, not negatively late
    delay: (ms) => delaySeconds.observe(Math.max(0, ms) / 1000),
    readAhead: (bytes) => readAheadBytes.set(bytes),
  };
}

// prom-client refuses a second metric of one name in a registry, so every user of a registry shares one set
const byRegistry = new WeakMap<Registry, IngestMetrics>();

/** The ingest metrics registered in `registry`, created on first use. */
export function ingestMetricsFor(registry: Registry): IngestMetrics {
  let metrics = byRegistry.get(registry);
  if (!metrics) {
    metrics = createIngestMetrics(registry);
    byRegistry.set(registry, metrics);
  }
  return metrics;
}

/** The ingest metrics of the process registry, shared by the NATS and HTTP gateways. */
export const ingestMetrics: IngestMetrics = ingestMetricsFor(metricsRegistry);
