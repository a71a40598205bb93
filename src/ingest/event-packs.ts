import { EVENT_COUNT_HEADER, eventSubject, packEvents, type TidemarkEvent } from '../core/envelope.ts';
import { natsMsgId } from '../core/identity.ts';
import type { PublishItem } from '../nats/batch-publisher.ts';

export type PackLimits = { eventsPerMessage: number; maxBytes: number };

/** One EVENTS message in the making: events of one subject, and which inputs they came from. */
export type EventPack = { item: PublishItem; members: number[] };

/** `chars` bounds the pack's size: UTF-8 takes at most three bytes for a UTF-16 unit. */
type Open = { subject: string; texts: string[]; events: TidemarkEvent[]; parts: Array<number | undefined>; members: number[]; chars: number };

const fold = (hash: number, value: number): number => {
  let rest = value;
  for (let i = 0; i < 7; i++) {
    hash = Math.imul(hash ^ (rest & 0xff), 0x01000193) >>> 0;
    rest = Math.floor(rest / 256);
  }
  return hash;
};

/**
 * FNV-1a over the INGEST positions of a pack (sequence, and the part within a packed
 * raw message): the same members always give the same id.
 */
function sequenceHash(events: TidemarkEvent[], parts: Array<number | undefined>): string {
  let hash = 0x811c9dc5;
  events.forEach((event, i) => {
    hash = fold(hash, event.seq);
    const part = parts[i];
    if (part !== undefined) hash = fold(hash, part + 1);
  });
  return hash.toString(16).padStart(8, '0');
}

function close(pack: Open): EventPack {
  const lone = pack.events.length === 1;
  const first = pack.events[0]!;
  return {
    members: pack.members,
    item: {
      subject: pack.subject,
      data: packEvents(pack.texts),
      // a lone event's message id derives from its (source, id), so a copy published again soon collapses into it;
      // a pack's id names its members, so a gateway that redelivers the same batch re-sends an identical pack
      // (an event's message id always holds a "." or starts with "sha256-": never a pack's)
      msgId: lone ? natsMsgId(first.source, first.id) : `pack-${first.seq}${pack.parts[0] === undefined ? '' : `.${pack.parts[0]}`}-${pack.events.length}-${sequenceHash(pack.events, pack.parts)}`,
      ...(lone ? {} : { headers: { [EVENT_COUNT_HEADER]: String(pack.events.length) } }),
    },
  };
}

/**
 * Packs valid events of one gateway batch into EVENTS messages: events of one subject,
 * in the order they arrived, at most `eventsPerMessage` and `maxBytes` a message.
 * `events[i]` is input i's event, or undefined when input i was rejected; `parts[i]`
 * its place in a packed raw message, if it came in one.
 */
export function packBatch(events: Array<TidemarkEvent | undefined>, limits: PackLimits, parts: ReadonlyArray<number | undefined> = []): EventPack[] {
  const packs: EventPack[] = [];
  const open = new Map<string, Open>();
  events.forEach((event, index) => {
    if (!event) return;
    const subject = eventSubject(event);
    const text = JSON.stringify(event);
    let pack = open.get(subject);
    if (pack && (pack.events.length >= limits.eventsPerMessage || 3 * (pack.chars + 1 + text.length) > limits.maxBytes)) {
      packs.push(close(pack));
      pack = undefined;
    }
    if (!pack) open.set(subject, (pack = { subject, texts: [], events: [], parts: [], members: [], chars: -1 }));
    pack.texts.push(text);
    pack.events.push(event);
    pack.parts.push(parts[index]);
    pack.members.push(index);
    pack.chars += 1 + text.length;
  });
  for (const pack of open.values()) packs.push(close(pack));
  return packs;
}
