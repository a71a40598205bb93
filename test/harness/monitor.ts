import type { JetStreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import type { TidemarkEvent } from '../../src/core/envelope.ts';
import { packBatch } from '../../src/ingest/event-packs.ts';
import type { Monitor } from '../../src/monitor/monitor.ts';
import { streamCount, waitFor } from './streams.ts';

/**
 * The positive signal before a "no further alert" check: each monitor runs its
 * clock-driven checks here, awaited, `passes` times after the caller's last change (a
 * pass that loses a state race with the monitor's own loop is run again). Whatever
 * those checks would raise has then been published.
 */
export async function checksRan(monitors: readonly Monitor[], passes = 2): Promise<void> {
  for (const monitor of monitors) {
    let failures = 0;
    for (let done = 0; done < passes;) {
      try {
        await monitor.tick();
        done++;
      } catch (err) {
        if (++failures > 20) throw err;
      }
    }
  }
}

/** Every event on EVENTS has been merged by the monitors on the shared durable. */
export const monitorDrained = (jsm: JetStreamManager) => waitFor(async () => {
  const info = await jsm.consumers.info('EVENTS', 'monitor');
  return info.num_pending === 0 && info.num_ack_pending === 0;
}, 60_000, 'the monitor to read all events');

/**
 * Straight onto EVENTS with core publishes, packed as a gateway packs them (what its output
 * looks like), fast enough for a flood; resolves once EVENTS holds every pack.
 */
export async function publishPacked(nc: NatsConnection, jsm: JetStreamManager, events: TidemarkEvent[], eventsPerMessage: number): Promise<void> {
  const before = await streamCount(jsm, 'EVENTS');
  const packs = packBatch(events, { eventsPerMessage, maxBytes: 512 * 1024 });
  for (const { item } of packs) {
    const h = headers();
    for (const [k, v] of Object.entries(item.headers ?? {})) h.set(k, v);
    nc.publish(item.subject, item.data, { headers: h });
  }
  await nc.flush();
  await waitFor(async () => (await streamCount(jsm, 'EVENTS')) === before + packs.length, 60_000, 'events stored');
}
