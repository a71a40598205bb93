import type { JsMsg } from '@nats-io/jetstream';

/** Headers of a message as a record (for the DLQ and for logs), with no prototype a header name could reach. */
export function headerRecord(msg: JsMsg): Record<string, string[]> {
  const out: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  if (!msg.headers) return out;
  for (const key of msg.headers.keys()) out[key] = msg.headers.values(key);
  return out;
}

/** JetStream's store time in epoch ms, exact (the client's number form of the nanoseconds loses digits). */
export const storedAtMs = (msg: JsMsg): number => delivery(msg).storedAtMs;

/**
 * Stream sequence and store time of a message, read from its reply subject in one pass
 * (`$JS.ACK[.<domain>.<account>].<stream>.<consumer>.<delivered>.<seq>.<dseq>.<nanos>.<pending>[.<token>]`).
 * The client's own accessors split that subject once for each and build a BigInt:
 * a tenth of a gateway's time at tens of thousands of messages a second. Here only the
 * dots are located and the digits read where they stand, with no substring made.
 */
export function delivery(msg: JsMsg): { seq: number; storedAtMs: number } {
  // not in the JsMsg type, but every JsMsg of the client has it; without it, the client's accessors answer
  const reply = (msg as { reply?: string }).reply ?? '';
  const base = ackBase(reply);
  if (base !== 0) {
    // seq and nanos are tokens base+1 and base+3; token i runs from replyDots[i-1]+1 to replyDots[i]; the last 6 digits of nanos are below a millisecond
    const seq = digits(reply, replyDots[base]! + 1, replyDots[base + 1]!);
    const nanosStart = replyDots[base + 2]! + 1;
    const nanosEnd = replyDots[base + 3]!;
    const ms = nanosEnd - nanosStart > 6 ? digits(reply, nanosStart, nanosEnd - 6) : -1;
    if (seq >= 0 && ms >= 0 && digits(reply, nanosEnd - 6, nanosEnd) >= 0) return { seq, storedAtMs: ms };
  }
  return { seq: msg.seq, storedAtMs: Number(msg.timestampNanos / 1_000_000n) };
}

/** How many times the server has delivered this message (1: first delivery), from its reply subject like `delivery`. */
export function deliveryCount(msg: JsMsg): number {
  const reply = (msg as { reply?: string }).reply ?? '';
  const base = ackBase(reply);
  const count = base === 0 ? -1 : digits(reply, replyDots[base - 1]! + 1, replyDots[base]!);
  return count >= 0 ? count : msg.info.deliveryCount;
}

/**
 * Locates the dots of a JetStream ack subject in `replyDots` and answers the index of
 * its `<delivered>` token (4 in the short form, 6 in the long one), or 0 when the
 * subject is not one.
 */
function ackBase(reply: string): number {
  if (!reply.startsWith('$JS.ACK.')) return 0;
  let count = 0;
  for (let at = reply.indexOf('.'); at !== -1 && count < replyDots.length; at = reply.indexOf('.', at + 1)) replyDots[count++] = at;
  const tokens = count + 1;
  if (tokens === 9) return 4;
  return tokens >= 11 && tokens <= 12 ? 6 : 0;
}

/** The decimal number written at text[start, end), or -1 if that is empty or holds anything but digits. */
function digits(text: string, start: number, end: number): number {
  if (end <= start) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

/** Dot positions of the reply subject being read: at most 11 dots in a well-formed one, 12 to tell a longer one. */
const replyDots = new Array<number>(12).fill(0);
