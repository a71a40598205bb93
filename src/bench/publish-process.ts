/**
 * The bench's load generator as a process of its own, as publishers are: core-publishes
 * raw events `from` … `from + count - 1` to `ingest.>` as fast as it can, then exits.
 *
 *   node --import tsx src/bench/publish-process.ts <nats-url> <from> <count> <now-ms>
 */
import { connect } from '@nats-io/transport-node';
import { rawEvent } from './workload.ts';

const [url, from, count, now] = process.argv.slice(2);
const nc = await connect({ servers: url, noAsyncTraces: true });
const first = Number(from);
const end = first + Number(count);
for (let i = first; i < end; i++) {
  const { subject, body } = rawEvent(i, Number(now));
  nc.publish(subject, body);
  if (i % 5_000 === 0) await nc.flush();
}
await nc.flush();
await nc.close();
