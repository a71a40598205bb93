import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
const nc = await connect({ servers: process.argv[2] });
const jsm = await jetstreamManager(nc);
const t0 = Date.now();
for (;;) {
  try {
    const out: string[] = [];
    for (const [s, d] of [['INGEST', 'gateway'], ['EVENTS', 'processor']]) {
      const i = await jsm.consumers.info(s, d);
      out.push(`${s} pending ${i.num_pending} ackpending ${i.num_ack_pending}`);
    }
    console.log(((Date.now() - t0) / 1000).toFixed(1), out.join(' | '));
  } catch (e) { console.log('err', (e as Error).message); }
  await new Promise(r => setTimeout(r, 1000));
}
