import { EVENT_COUNT_HEADER, eventSubject, packEvents, type TidemarkEvent } from '../core/envelope.ts';
import { natsMsgId } from '../core/identity.ts';
import type { PublishItem } from '../nats/batch-publisher.ts';

export type PackLimits = { eventsPerMessage: number; maxBytes: number };

/** One EVENTS message in the making: events of one subject, and which inputs they came from. */
export type EventPack = { item: PublishItem; members: number[] };

/** `chars` bounds the pack's size: UTF-8 takes at most three bytes for a UTF-16 unit. */
type Open = { subject: string; texts: string[]; events: TidemarkEvent[]; members: number[]; chars: number };

/** FNV-1a over the INGEST sequences of a pack: the same members always give the same id. */
function sequenceHash(events: TidemarkEvent[]): string {
  let hash = 0x811c9dc5;
  for (const event of events) {
    let seq = event.seq;
    for (let i = 0; i < 7; i++) {
      hash = Math.imul(hash ^ (seq & 0xff), 0x01000193) >>> 0;
      seq = Math.floor(seq / 256);
    }
  }
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
      msgId: lone ? natsMsgId(first.source, first.id) : `pack-${first.seq}-${pack.events.length}-${sequenceHash(pack.events)}`,
      ...(lone ? {} : { headers: { [EVENT_COUNT_HEADER]: String(pack.events.length) } }),
    },
  };
}

/**
 * Packs valid events of one gateway batch into EVENTS messages: events of one subject,
 * in the order they arrived, at most `eventsPerMessage` and `maxBytes` a message.
 * `events[i]` is input i's event, or undefined when input i was rejected.
 */
export function packBatch(events: Array<TidemarkEvent | undefined>, limits: PackLimits): EventPack[] {
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
    if (!pack) open.set(subject, (pack = { subject, texts: [], events: [], members: [], chars: -1 }));
    pack.texts.push(text);
    pack.events.push(event);
    pack.members.push(index);
    pack.chars += 1 + text.length;
  });
  for (const pack of open.values()) packs.push(close(pack));
  return packs;
}
