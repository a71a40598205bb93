import type { JetStreamClient } from '@nats-io/jetstream';
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

/** Null when the processor consumer cannot be read (a replay with no pipeline set up): then the day is read whole, as it stands. */
export async function readArrivalMark(js: JetStreamClient): Promise<ArrivalMark | null> {
  try {
    const consumer = await js.consumers.get(CONSUMERS.processor.stream, CONSUMERS.processor.durable);
    const info = await consumer.info();
    return { epoch: await streamEpoch(js), hwm: info.ack_floor.stream_seq, delivered: info.delivered.stream_seq };
  } catch (err) {
    if (/not found/i.test(String((err as Error)?.message))) return null;
    throw err;
  }
}
