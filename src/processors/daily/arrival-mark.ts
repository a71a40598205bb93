import type { Consumer, JetStreamClient } from '@nats-io/jetstream';
import { CONSUMERS } from '../../nats/topology.ts';

/**
 * How far the processors have stored EVENTS, for the daily revisor.
 * - `epoch`: the stream's creation time, telling a stream from one made anew;
 * - `hwm`: the processor consumer's ack floor. A processor acks a message only once its
 *   events are in ClickHouse, so every row of a message at or below it is readable;
 * - `delivered`: the highest sequence handed to any processor. A day marked dirty
 *   before this was read holds nothing beyond it, so once a revision's hwm reaches it,
 *   that mark is fully taken in.
 */
export type ArrivalMark = { epoch: number; hwm: number; delivered: number };

/** The creation time (ms) of the stream the processors consume. */
export async function streamEpoch(js: JetStreamClient): Promise<number> {
  const info = await (await js.streams.get(CONSUMERS.processor.stream)).info();
  return Date.parse(info.created);
}

/** How long the stream's epoch is taken as read: a stream made anew is noticed within this. */
const EPOCH_FOR_MS = 10_000;

const isNotFound = (err: unknown): boolean => /not found/i.test(String((err as Error)?.message));

/**
 * Reads arrival marks with one JetStream request each (the consumer's info; the epoch
 * is read again every EPOCH_FOR_MS). Null when the processor consumer does not exist
 * (a replay with no pipeline set up): the day is then read whole, as it stands.
 */
export function arrivalMarks(js: JetStreamClient): () => Promise<ArrivalMark | null> {
  let consumer: Consumer | null = null;
  let epoch: { value: number; at: number } | null = null;
  return async () => {
    try {
      if (!epoch || Date.now() - epoch.at > EPOCH_FOR_MS) epoch = { value: await streamEpoch(js), at: Date.now() };
      consumer ??= await js.consumers.get(CONSUMERS.processor.stream, CONSUMERS.processor.durable);
      const info = await consumer.info();
      return { epoch: epoch.value, hwm: info.ack_floor.stream_seq, delivered: info.delivered.stream_seq };
    } catch (err) {
      consumer = null;
      epoch = null;
      if (isNotFound(err)) return null;
      throw err;
    }
  };
}
