import type { JetStreamManager } from '@nats-io/jetstream';
import { decodeEvents } from '../core/envelope.ts';
import { contentFingerprint, eventIdentity } from '../core/identity.ts';
import { raceAbort } from '../core/loop.ts';
import type { RecentIds } from '../core/recent-ids.ts';
import { STREAMS } from '../nats/topology.ts';

/** An event's identity and content fingerprint: what the gateway's recent ids keep. */
export type SeenEvent = [identity: string, fingerprint: number];

/** The events of one EVENTS message, in stream order; a body that holds no events (written there by hand) gives none. */
export function seenEventsOf(data: Uint8Array): SeenEvent[] {
  try {
    return decodeEvents(data).map((event) => [eventIdentity(event.source, event.id), contentFingerprint(event)]);
  } catch {
    return [];
  }
}

/**
 * The newest `capacity` events of `messages` (given newest message first, each one's
 * events in stream order), oldest first: added in that order, RecentIds keeps the
 * newest in the generation it drops last, as it would have had it stored them itself.
 */
export function tailOldestFirst(messages: readonly SeenEvent[][], capacity: number): SeenEvent[] {
  const tail: SeenEvent[] = [];
  let room = capacity;
  for (let m = 0; m < messages.length && room > 0; m++) {
    const events = messages[m]!;
    for (let i = events.length - 1; i >= 0 && room > 0; i--, room--) tail.push(events[i]!);
  }
  return tail.reverse();
}

export type RefillOutcome = {
  /** events added to the recent ids */
  events: number;
  /** EVENTS messages read */
  messages: number;
  /** whether `capacity` events (or every event EVENTS holds) were read */
  complete: boolean;
  ms: number;
  error?: unknown;
};

/**
 * Fills `recent` with the last `capacity` events on EVENTS, read backwards from its last
 * message by sequence (no consumer to make or clean up; a message is one lone event or
 * a pack of them, so the read stops after at most `capacity` messages and far fewer when
 * events came packed). Gets go `window` at a time: one at a time a round trip each
 * would make 20,000 lone events take seconds. Whatever was read when `budgetMs` runs
 * out, `stop` aborts or a get fails is still added: the newest events are read first
 * and matter most.
 */
export async function refillRecentIds(jsm: JetStreamManager, recent: RecentIds, options: { capacity: number; budgetMs: number; window: number; stop: AbortSignal }): Promise<RefillOutcome> {
  const started = performance.now();
  const halt = AbortSignal.any([options.stop, AbortSignal.timeout(options.budgetMs)]);
  const messages: SeenEvent[][] = [];
  let events = 0;
  let complete = false;
  let error: unknown;
  try {
    const info = await raceAbort(jsm.streams.info(STREAMS.events.name), halt);
    if (info) {
      const { first_seq: first, last_seq: last, messages: stored } = info.state;
      let seq = last;
      complete = stored === 0;
      while (!complete && !halt.aborted) {
        const from = Math.max(first, seq - options.window + 1);
        const gets: Array<ReturnType<JetStreamManager['streams']['getMessage']>> = [];
        for (let s = seq; s >= from; s--) gets.push(jsm.streams.getMessage(STREAMS.events.name, { seq: s }));
        const got = await raceAbort(Promise.all(gets), halt);
        if (!got) break;
        for (const msg of got) {
          // a sequence removed from the stream (by age, or by hand) has no message
          if (!msg) continue;
          const seen = seenEventsOf(msg.data);
          messages.push(seen);
          events += seen.length;
          if (events >= options.capacity) break;
        }
        seq = from - 1;
        complete = events >= options.capacity || seq < first;
      }
    }
  } catch (err) {
    error = err;
  }
  const tail = tailOldestFirst(messages, options.capacity);
  for (const [identity, fingerprint] of tail) recent.add(identity, fingerprint);
  return { events: tail.length, messages: messages.length, complete: complete && error === undefined, ms: Math.round(performance.now() - started), ...(error === undefined ? {} : { error }) };
}
