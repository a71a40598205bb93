import type { Logger } from 'pino';
import type { TidemarkEvent } from '../../core/envelope.ts';
import { wellFormed } from '../../core/field-limits.ts';
import { sleep } from '../../core/time.ts';
import type { AlertPublisher, PublishOutcome } from '../../nats/alert-guard.ts';
import { alertId } from '../../core/alert-kinds.ts';

/** A report's realtime view reached `processor.maxRealtimeGroups`: events of further groups were left out of it (still stored, still in the daily view). */
export type RealtimeCappedAlert = {
  id: string;
  kind: 'CardinalityCapped';
  /** the report, as every report alert names it */
  source: string;
  report: string;
  scope: 'realtime';
  /** UTC day of the receivedAt of the first event cut */
  day: string;
  limit: number;
  /** the group of that event, cut to 64 characters */
  example: string;
  at: number;
  message: string;
};

const DAY_MS = 86_400_000;

/**
 * One per report and UTC day of the cut event's receivedAt, like the monitor's per SLA:
 * every processor and every restart that cuts events of that report on that day computes
 * the same id, and the alert guard (a KV bucket remembering raised ids for
 * monitor.alertMemory, plus Nats-Msg-Id dedup) lets only the first publish through.
 */
export function realtimeCappedAlert(report: string, limit: number, event: Pick<TidemarkEvent, 'receivedAt'>, group: string): RealtimeCappedAlert {
  const day = new Date(event.receivedAt).toISOString().slice(0, 10);
  const example = wellFormed(group.slice(0, 64));
  return {
    id: alertId('CardinalityCapped', { report, day }),
    kind: 'CardinalityCapped',
    source: report,
    report,
    scope: 'realtime',
    day,
    limit,
    example,
    at: event.receivedAt,
    message: `report ${report} keeps at most ${limit} groups in its realtime view; on ${day} events of further groups (e.g. ${JSON.stringify(example)}) were stored and are in the daily view, not in the realtime view`,
  };
}

export type CappedAlerts = {
  /** an event of `report` was cut (synchronous: the first of each report and day is queued, the rest cost a lookup) */
  note: (report: string, event: TidemarkEvent, group: () => string) => void;
  /** what this instance's publishes came to: `duplicate` when another instance or an earlier run had raised it */
  readonly outcomes: Record<PublishOutcome, number>;
  stop: () => Promise<void>;
};

/** Report-days remembered here at most; past it, a day is asked of the guard again (which answers `duplicate`). */
const MAX_REMEMBERED = 1_000;
const RETRY_MS = 1_000;

/**
 * Raises the realtime cap's alerts in the background, so cutting an event never waits
 * on NATS: a publish that fails is tried again every second until it lands or `stop`.
 */
export function cappedAlerts(options: { publish: AlertPublisher<RealtimeCappedAlert>; limit: number; logger: Logger; now: () => number }): CappedAlerts {
  const { publish, limit, logger } = options;
  const seen = new Set<string>();
  const queue: RealtimeCappedAlert[] = [];
  const outcomes: Record<PublishOutcome, number> = { published: 0, duplicate: 0 };
  const controller = new AbortController();
  let sending: Promise<void> | undefined;

  const send = async () => {
    while (queue.length > 0 && !controller.signal.aborted) {
      const alert = queue[0]!;
      try {
        const outcome = await publish(alert, options.now());
        outcomes[outcome]++;
        queue.shift();
        if (outcome === 'published') logger.warn({ alert: alert.id, report: alert.report, limit }, 'realtime group limit reached: CardinalityCapped raised');
      } catch (err) {
        logger.warn({ err, alert: alert.id }, 'CardinalityCapped not published; trying again');
        await sleep(RETRY_MS, controller.signal);
      }
    }
  };

  const kick = () => {
    sending ??= send().finally(() => {
      sending = undefined;
      // a note that came while the loop was ending
      if (queue.length > 0 && !controller.signal.aborted) kick();
    });
  };

  return {
    outcomes,
    note: (report, event, group) => {
      const key = `${report}\n${Math.floor(event.receivedAt / DAY_MS)}`;
      if (seen.has(key)) return;
      if (seen.size >= MAX_REMEMBERED) seen.clear();
      seen.add(key);
      queue.push(realtimeCappedAlert(report, limit, event, group()));
      kick();
    },
    stop: async () => {
      controller.abort();
      await sending;
    },
  };
}
