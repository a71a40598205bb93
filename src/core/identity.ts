import { hash } from 'node:crypto';
import { canonicalJson } from './canonical.ts';

/**
 * An event's identity is the pair (source, id), as in CloudEvents: two producers that
 * number alike never collide, and copies of one (source, id) are one event.
 *
 * Ids the product makes start with `~`, which client ids may not (they are refused
 * with RESERVED_ID), so no client can pre-empt a generated id:
 * - `~<stream>-<seq>`: an event without id or Nats-Msg-Id, from its raw stream sequence;
 * - `~m:<Nats-Msg-Id>`: an event without id, from the header its publisher set;
 * - `~<stream>-<seq>-<part>`: an event without id, item `part` of a packed raw message.
 */
export const RESERVED_ID_PREFIX = '~';

export const isReservedId = (id: string): boolean => id.startsWith(RESERVED_ID_PREFIX);

export const idFromSequence = (stream: string, seq: number): string => `${RESERVED_ID_PREFIX}${stream}-${seq}`;

export const idFromPackPart = (stream: string, seq: number, part: number): string => `${RESERVED_ID_PREFIX}${stream}-${seq}-${part}`;

export const idFromMsgId = (msgId: string): string => `${RESERVED_ID_PREFIX}m:${msgId}`;

/**
 * One string per (source, id), for maps and sets. A source is one subject token and
 * never holds a ".", so the first "." always splits the pair back: no two identities
 * share a key.
 */
export const eventIdentity = (source: string, id: string): string => `${source}.${id}`;

/** Longest Nats-Msg-Id written as plain text; JetStream keeps every id of its duplicate window in memory. */
export const MAX_PLAIN_MSG_ID = 128;

/** Printable ASCII without spaces: never a \r or \n (nats.js throws on those), never trimmed or re-encoded. */
const HEADER_SAFE = /^[\x21-\x7e]+$/;

/**
 * The JetStream message id of one event: `<source>.<id>` when that is short and
 * header-safe, else `sha256-<hex>` of the pair. Plain ids always hold a "." and the
 * hashed ones never do, and neither collides with a pack's `pack-…` id, so a client
 * choosing its source and id cannot make another event's message id.
 */
export function natsMsgId(source: string, id: string): string {
  const plain = eventIdentity(source, id);
  if (plain.length <= MAX_PLAIN_MSG_ID && HEADER_SAFE.test(plain)) return plain;
  return `sha256-${hash('sha256', `${source}\u0000${id}`, 'hex')}`;
}

/**
 * The Nats-Msg-Id of an HTTP item on INGEST: identity and payload, so a byte-identical
 * re-post collapses in INGEST while a different copy under the same identity reaches
 * the NATS gateway, which keeps the first and files the other as a conflict.
 */
export const ingestMsgId = (source: string, id: string, payload: Uint8Array): string =>
  `http-${hash('sha256', Buffer.concat([Buffer.from(`${source}\u0000${id}\u0000`), payload]), 'base64url')}`;

/**
 * cyrb53: a 53-bit string hash, a fraction of a SHA-1's cost on the gateway's hot path.
 * Not cryptographic: a client could craft a different copy of its own event that hashes
 * alike, which then passes as a re-send, not a conflict; the first copy still wins.
 */
function hash53(text: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/**
 * What makes two copies of one identity the same event: type, key, occurredAt and data
 * (compared as canonical JSON, so key order does not matter). Not the stamps a gateway
 * adds (receivedAt, seq), which differ for every copy.
 */
export function contentFingerprint(event: { type: string; key: string | null; occurredAt: number; data: Record<string, unknown> }): number {
  return hash53(`${event.type}\u0000${event.key ?? '\u0001'}\u0000${event.occurredAt}\u0000${canonicalJson(event.data)}`);
}
