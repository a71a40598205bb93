import type { JsMsg } from '@nats-io/jetstream';
import type { ReportConfig } from '../core/config.ts';
import { decodeEvents, type TidemarkEvent } from '../core/envelope.ts';
import { businessDay } from './logic/business-day.ts';
import type { DayRef } from './daily/revision-store.ts';

export type DecodedBatch = { events: TidemarkEvent[]; undecodable: JsMsg[] };

const isEvent = (event: TidemarkEvent): boolean => typeof event?.id === 'string' && Number.isFinite(event.occurredAt);

/**
 * The events of a batch of EVENTS messages (each one event or a pack of them). EVENTS
 * carries only what a gateway validated; a message that still fails to decode is kept
 * aside whole, not retried forever.
 */
export function decodeBatch(msgs: JsMsg[]): DecodedBatch {
  const events: TidemarkEvent[] = [];
  const undecodable: JsMsg[] = [];
  for (const msg of msgs) {
    try {
      const decoded = decodeEvents(msg.data);
      if (!decoded.every(isEvent)) throw new Error('not an event');
      for (const event of decoded) events.push(event);
    } catch {
      undecodable.push(msg);
    }
  }
  return { events, undecodable };
}

/** The (report, business day) pairs a batch touches: the days whose figures need recomputing. */
export function touchedDays(reports: ReportConfig[], events: TidemarkEvent[]): DayRef[] {
  const seen = new Map<string, DayRef>();
  for (const report of reports) {
    for (const event of events) {
      if (!report.types.includes(event.type)) continue;
      const day = businessDay(event.occurredAt, report.timeZone);
      const id = `${report.name}.${day}`;
      if (!seen.has(id)) seen.set(id, { report: report.name, day });
    }
  }
  return [...seen.values()];
}
