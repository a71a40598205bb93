/**
 * The bench's load generator as a process of its own, as publishers are: core-publishes
 * raw events `from` … `from + count - 1` to `ingest.>`, then exits. Without a rate it
 * publishes as fast as it can, every event stamped `now-ms`; with one it publishes
 * that many events a second, in 10 ms ticks, stamped with the clock.
 *
 *   node --import tsx src/bench/publish-process.ts <nats-url> <from> <count> <now-ms> [<events-per-second>]
 */
import { connect } from '@nats-io/transport-node';
import { rawEvent } from './workload.ts';

const [url, from, count, now, rate] = process.argv.slice(2);
const nc = await connect({ servers: url, noAsyncTraces: true });
const first = Number(from);
const end = first + Number(count);
if (rate === undefined) {
  for (let i = first; i < end; i++) {
    const { subject, body } = rawEvent(i, Number(now));
    nc.publish(subject, body);
    if (i % 5_000 === 0) await nc.flush();
  }
} else {
  const tickMs = 10;
  const perTick = Math.max(1, Math.round((Number(rate) * tickMs) / 1000));
  const started = performance.now();
  for (let i = first, tick = 0; i < end; tick++) {
    const stamp = Date.now();
    for (let k = 0; k < perTick && i < end; k++, i++) {
      const { subject, body } = rawEvent(i, stamp);
      nc.publish(subject, body);
    }
    await nc.flush();
    // ticks keep to the wall clock, so a slow tick is made up by the next ones
    const wait = started + (tick + 1) * tickMs - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}
await nc.flush();
await nc.close();
