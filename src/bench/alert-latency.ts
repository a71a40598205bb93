import { AckPolicy, DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Config } from '../core/config.ts';
import { encodeEvent, eventSubject, type TidemarkEvent } from '../core/envelope.ts';
import { startMonitor } from '../monitor/monitor.ts';
import { CONSUMERS, maxAckPending, STREAMS } from '../nats/topology.ts';
import { percentile } from './stats.ts';

export type AlertLatency = { p50: number; p99: number; max: number; trials: number; groupWaitMs: number };

const LATE_BY_MS = 3 * 3_600_000;

/**
 * Time from the first late event of a group to its DelayedEvent on `alerts.>`: `trials`
 * sources each start a burst of late events (3 h late, SLA 1 h) at staggered moments;
 * a subscriber on `alerts.delayed.>` notes when each source's first alert arrives. The
 * monitor's durable starts at the end of EVENTS, so the runs before do not queue ahead.
 */
export async function alertLatency(input: { nc: NatsConnection; js: JetStreamClient; jsm: JetStreamManager; clickhouse: ClickHouseClient; config: Config; logger: Logger; trials: number }): Promise<AlertLatency> {
  const { nc, js, jsm, config, trials } = input;
  const { stream, durable } = CONSUMERS.monitor;
  await jsm.consumers.delete(stream, durable).catch(() => undefined);
  await jsm.consumers.add(stream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.New,
    ack_wait: nanos(config.nats.ackWait),
    max_ack_pending: maxAckPending(STREAMS.events.name, config),
  });
  const monitor = await startMonitor({ config, js, clickhouse: input.clickhouse, logger: input.logger, registry: new Registry() });
  const firstAt = new Map<string, number>();
  const latencies = new Map<string, number>();
  const sub = nc.subscribe('alerts.delayed.>');
  const listening = (async () => {
    for await (const msg of sub) {
      const alert = msg.json<{ source: string; sequence?: number }>();
      const start = firstAt.get(alert.source);
      if (start !== undefined && !latencies.has(alert.source)) latencies.set(alert.source, Date.now() - start);
      if (latencies.size === trials) break;
    }
  })();
  try {
    const gapMs = Math.max(50, Math.floor(5_000 / trials));
    for (let t = 0; t < trials; t++) {
      const source = `bench-late-${t}`;
      // a burst of late events, then a trickle, as a source replaying a backlog would send them
      for (let i = 0; i < 20; i++) {
        const now = Date.now();
        if (i === 0) firstAt.set(source, now);
        const event: TidemarkEvent = { id: `${source}-${i}`, type: 'bench_late', source, key: null, occurredAt: now - LATE_BY_MS, receivedAt: now, data: {}, seq: i };
        nc.publish(eventSubject(event), encodeEvent(event));
      }
      await nc.flush();
      await new Promise((r) => setTimeout(r, gapMs));
    }
    const deadline = Date.now() + config.monitor.groupWait + 60_000;
    while (latencies.size < trials && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  } finally {
    sub.unsubscribe();
    await listening;
    await monitor.stop();
  }
  const values = [...latencies.values()];
  if (values.length < trials) throw new Error(`${trials - values.length} of ${trials} late bursts raised no DelayedEvent within groupWait + 60 s`);
  return { p50: percentile(values, 50), p99: percentile(values, 99), max: Math.max(...values), trials, groupWaitMs: config.monitor.groupWait };
}
