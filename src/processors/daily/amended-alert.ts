import { alertId, alertMessage } from '../../core/alert-kinds.ts';
import { publishAlert } from '../../nats/alert-publish.ts';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { RevisionRecord } from '../logic/revisions.ts';
import { retryTransient } from '../../nats/retry.ts';

export type AmendedAlert = {
  id: string;
  kind: 'ReportAmended';
  report: string;
  day: string;
  groupKey: string;
  revision: number;
  /** 0 and null for a group whose first event came after the day was final */
  previousRevision: number;
  previousStatus: RevisionRecord['status'] | null;
  before: Readonly<Record<string, string>>;
  after: Readonly<Record<string, string>>;
  lateEvents: number;
  at: number;
};

/**
 * A figure changed after it was final. The alert id is derived from the revision, so a
 * crash and retry (or a second processor) publishes it once: JetStream drops the copy.
 */
export async function publishAmendedAlert(
  js: JetStreamClient,
  input: { report: string; day: string; groupKey: string; previous: RevisionRecord | null; record: RevisionRecord },
): Promise<AmendedAlert> {
  const alert: AmendedAlert = {
    id: alertId('ReportAmended', { report: input.report, day: input.day, groupKey: input.groupKey, revision: input.record.revision }),
    kind: 'ReportAmended',
    report: input.report,
    day: input.day,
    groupKey: input.groupKey,
    revision: input.record.revision,
    previousRevision: input.previous?.revision ?? 0,
    previousStatus: input.previous?.status ?? null,
    before: input.previous?.measures ?? {},
    after: input.record.measures,
    lateEvents: input.record.lateEvents,
    at: input.record.computedAt,
  };
  const message = alertMessage(alert);
  await retryTransient(() => publishAlert(js, message));
  return alert;
}
