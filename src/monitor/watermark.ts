import type { JetStreamManager } from '@nats-io/jetstream';
import { decodeEvents } from '../core/envelope.ts';
import type { Clock } from '../core/time.ts';
import { CONSUMERS } from '../nats/topology.ts';

export type Progress = {
  /** every event received before this instant has been merged into the shared state */
  watermark: number;
  /** EVENTS sequences at or below this are acked by the monitor and never redelivered */
  ackFloor: number;
  /** nothing pending: the watermark moves with the clock (else it moves as events are merged) */
  caughtUp: boolean;
};

/**
 * How far the monitors (all instances) have got, read from the shared durable
 * consumer rather than the wall clock, so a monitor that was down judges buckets and
 * deadlines by what it has actually read. Caught up: the clock minus the grace for
 * events still between INGEST and EVENTS. Behind: the receivedAt of the oldest event
 * not yet acked, minus the grace for events out of receivedAt order.
 */
export async function readProgress(jsm: JetStreamManager, clock: Clock, graceMs: number): Promise<Progress> {
  const { stream, durable } = CONSUMERS.monitor;
  const info = await jsm.consumers.info(stream, durable);
  const ackFloor = info.ack_floor.stream_seq;
  if (info.num_pending === 0 && info.num_ack_pending === 0) return { watermark: clock.now() - graceMs, ackFloor, caughtUp: true };
  const next = await jsm.streams.getMessage(stream, { seq: ackFloor + 1 }).catch(() => null);
  if (!next) return { watermark: Number.NEGATIVE_INFINITY, ackFloor, caughtUp: false };
  try {
    return { watermark: Math.min(...decodeEvents(next.data).map((e) => e.receivedAt)) - graceMs, ackFloor, caughtUp: false };
  } catch {
    return { watermark: Number.NEGATIVE_INFINITY, ackFloor, caughtUp: false };
  }
}
