import type { JsMsg } from '@nats-io/jetstream';
import { runBatchConsumer, type RunningConsumer } from '../nats/batch-consumer.ts';
import type { Feed } from './feeds.ts';
import { arrive } from './logic/pending.ts';
import { reconMetrics } from './metrics.ts';
import { applyAndEmit, decodeFeed, type StreamDeps } from './stream-apply.ts';

/** The match cursor of one feed: every record is paired (or marked expected) as it arrives. */
export async function startMatchCursor(deps: StreamDeps, feed: Feed): Promise<RunningConsumer> {
  const { recon, js, logger } = deps;
  return runBatchConsumer({
    js,
    stream: feed.match.stream,
    durable: feed.match.durable,
    batchSize: recon.stream.batchSize,
    logger,
    poison: deps.poison,
    handler: async (msgs: JsMsg[]) => {
      const items = await decodeFeed(js, recon, feed.side, msgs);
      await applyAndEmit(deps, items, (item, current) => arrive(recon, current, feed.side, item.ref, item.record, item.arrivedAt));
      for (const item of items) item.msg.ack();
      reconMetrics.records(recon.name, feed.side, items.length);
    },
  });
}
