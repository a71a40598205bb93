import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { JsMsg } from '@nats-io/jetstream';
import { createInbox, type Msg, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

export type ReadAheadLimit = {
  nc: NatsConnection;
  /** bytes of message data pulled and not yet handled, at most */
  maxBytes: number;
  /** the largest message the server may send (its max_payload, plus room for subject and reply): a pull is made only with that much room left */
  maxMessageBytes: number;
  /** told the bytes held after each change */
  onHeld?: (bytes: number) => void;
  /**
   * told when the server ended a request because the consumer was deleted (409), or a
   * request went unanswered past its expiry: a pull on a durable that does not exist is
   * answered by nothing at all (measured on 2.9.10), so the puller alone cannot tell a
   * request lost with its server from a durable that is gone, and pulls on regardless
   */
  onMaybeGone?: () => void;
};

/**
 * The client's own wrapper of a delivered message (ack, nak, working, term, info). It
 * is not exported by @nats-io/jetstream 3.4, whose consume() and fetch() cannot bound
 * bytes held (both refill as messages arrive, and fetch() refuses max_messages with
 * max_bytes, then waits for heartbeats to time out once its batch is full): this
 * module speaks the pull protocol itself and wraps messages as the client does.
 */
// imported, not required: under `node --import tsx/esm` a require() from this module fails (ERR_REQUIRE_CYCLE_MODULE)
const jsmsgUrl = pathToFileURL(join(dirname(fileURLToPath(import.meta.resolve('@nats-io/jetstream'))), 'jsmsg.js')).href;
const { toJsMsg } = (await import(jsmsgUrl)) as { toJsMsg: (msg: Msg, ackTimeoutMs?: number) => JsMsg };

/** As consume()'s pulls (batch-consumer.ts), for the same failover reasons. */
const PULL_EXPIRES_MS = 5_000;
/**
 * A request that brought nothing and was not ended by the server (408) within this
 * long was lost with its server. No idle heartbeats are asked for: with them, a request
 * carrying max_bytes made 2.9.10 slow to deliver other consumers' messages on the same
 * connection (a test reading a 1 MiB DLQ record took 80 s instead of 16).
 */
const LOST_AFTER_MS = PULL_EXPIRES_MS + 2_000;
const WATCH_EVERY_MS = 1_000;

const nanos = (ms: number): number => ms * 1_000_000;

/**
 * Pulls a durable consumer with one request at a time, each for at most the bytes not
 * yet held (`max_bytes`, which the server counts over whole messages, so never less than
 * their data): what is held stays under `maxBytes` however large the messages are.
 * A request ends when its batch is delivered, when its bytes are used up (409 from the
 * server: the next message does not fit), or at its expiry (408); the next one is sent
 * from the same callback, so pulls keep pace with the stream.
 */
export function boundedPuller(stream: string, durable: string, limit: ReadAheadLimit, maxMessages: number, arrive: (msg: JsMsg) => void, logger: Logger) {
  const { nc } = limit;
  // a limit below one message could never pull that message
  const maxBytes = Math.max(limit.maxBytes, limit.maxMessageBytes);
  const inbox = createInbox();
  let held = 0;
  let stopping = false;
  /** messages still due on the request under way, and whether it brought any */
  let open: { left: number; brought: boolean } | undefined;
  /** the last request ended with nothing brought (no room for the next message, or the server refused it): the next waits for a release or the watchdog */
  let starved = false;
  let lastHeard = performance.now();
  const note = () => limit.onHeld?.(held);

  const pull = () => {
    if (stopping || open) return;
    const room = maxBytes - held;
    if (room < limit.maxMessageBytes || starved) return;
    open = { left: maxMessages, brought: false };
    lastHeard = performance.now();
    nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${stream}.${durable}`, JSON.stringify({ batch: maxMessages, max_bytes: room, expires: nanos(PULL_EXPIRES_MS) }), { reply: inbox });
  };
  const ended = () => {
    open = undefined;
    pull();
  };

  const sub = nc.subscribe(inbox, {
    callback: (err, msg) => {
      if (err) {
        if (!stopping) logger.warn({ err, stream, durable }, 'pull subscription failed');
        return;
      }
      lastHeard = performance.now();
      // status messages come on the inbox itself, deliveries on their own subjects
      if (msg.subject === inbox) {
        const code = msg.headers?.code ?? 0;
        // heartbeats and flow control, should a server send them: not an end
        if (code < 400) return;
        // 404 no messages, 408 expired, 409 bytes used up (or the consumer went): the request is over
        if (code === 409 && !open?.brought) starved = true;
        if (code === 409 && /consumer deleted/i.test(msg.headers?.description ?? '')) limit.onMaybeGone?.();
        if (code >= 400 && code !== 404 && code !== 408 && !/exceeds maxbytes/i.test(msg.headers?.description ?? '')) {
          logger.warn({ stream, durable, code, description: msg.headers?.description }, 'pull request ended by the server');
        }
        return ended();
      }
      held += msg.data.byteLength;
      note();
      if (open) {
        open.brought = true;
        if (--open.left === 0) open = undefined;
      }
      arrive(toJsMsg(msg));
      if (!open) pull();
    },
  });
  const watchdog = setInterval(() => {
    if (open && performance.now() - lastHeard > LOST_AFTER_MS) {
      limit.onMaybeGone?.();
      ended();
    }
    // a request refused for want of room (say, a message larger than announced) is tried again now and then
    else if (!open) {
      starved = false;
      pull();
    }
  }, WATCH_EVERY_MS);
  pull();

  return {
    /** Messages no longer held (handled, or nak'd to come again in a later pull). */
    release: (msgs: JsMsg[]) => {
      for (const msg of msgs) held -= msg.data.byteLength;
      note();
      starved = false;
      pull();
    },
    stop: () => {
      stopping = true;
      clearInterval(watchdog);
      sub.unsubscribe();
    },
  };
}
