import type { JsMsg } from '@nats-io/jetstream';
import type { ReportConfig } from '../core/config.ts';
import { decodeEvents, type TidemarkEvent } from '../core/envelope.ts';
import { businessDay } from '../core/business-day.ts';
import type { DayRef } from './daily/revision-store.ts';
import { delivery } from '../nats/js-msg.ts';
import type { ArrivedEvent } from '../sinks/clickhouse/events-table.ts';

export type DecodedBatch = { events: ArrivedEvent[]; undecodable: JsMsg[] };

const isEvent = (event: TidemarkEvent): boolean => typeof event?.id === 'string' && Number.isFinite(event.occurredAt);

/** The events of one EVENTS message (one event or a pack of them), or null when it is not that. */
export function decodeMessage(msg: JsMsg): TidemarkEvent[] | null {
  try {
    const decoded = decodeEvents(msg.data);
    return decoded.every(isEvent) ? decoded : null;
  } catch {
    return null;
  }
}

/**
 * The events of a batch of EVENTS messages, each decoded once: `decoded` holds what was
 * decoded on arrival. EVENTS carries only what a gateway validated; a message that still
 * fails to decode is kept aside whole, not retried forever.
 */
export function decodeBatch(msgs: JsMsg[], decoded?: WeakMap<JsMsg, TidemarkEvent[] | null>, epoch?: number): DecodedBatch {
  const events: ArrivedEvent[] = [];
  const undecodable: JsMsg[] = [];
  for (const msg of msgs) {
    const own = decoded?.has(msg) ? decoded.get(msg)! : decodeMessage(msg);
    if (own === null) undecodable.push(msg);
    else if (epoch === undefined) for (const event of own) events.push(event);
    else {
      // tagged with its message's sequence: the daily revisor reads what came in past its high-water mark
      // set on the decoded object, not on a copy: a copy per event was a tenth of the
      // processor's JS time and most of its garbage; the realtime fold reads no arrival
      const arrival = { epoch, seq: delivery(msg).seq };
      for (const event of own) {
        (event as ArrivedEvent).arrival = arrival;
        events.push(event);
      }
    }
  }
  return { events, undecodable };
}

/** The (report, business day) pairs a batch touches: the days whose figures need recomputing. */
export function touchedDays(reports: ReportConfig[], events: TidemarkEvent[]): DayRef[] {
  const seen = new Map<string, DayRef>();
  for (const report of reports) {
    // a batch's events mostly fall on one day: only a change of day is looked up
    let last = '';
    for (const event of events) {
      if (!report.types.includes(event.type)) continue;
      const day = businessDay(event.occurredAt, report.timeZone);
      if (day === last) continue;
      last = day;
      const id = `${report.name}.${day}`;
      if (!seen.has(id)) seen.set(id, { report: report.name, day });
    }
  }
  return [...seen.values()];
}
