/**
 * Every alert kind the product raises, in one registry: its subject token (published as
 * `alerts.<token>.<name>`, SPEC §9), the alert field that names it (`about`: the
 * source, report, saga or reconciliation), the role that raises it, and its id scheme.
 * Ids are deterministic and stored (the alert guard, JetStream's Nats-Msg-Id dedup, the
 * recon claims remember them), so a scheme never changes: a changed id would raise an
 * alert again after an upgrade. The config schema takes webhook `kinds` from this list,
 * so every kind here can be routed, and every publisher builds its message with
 * `alertMessage`, so subject, id and headers are made in one place. A new kind is one
 * entry here (and tests); the compiler finds every place that must know it.
 */
import { groupToken } from './group-token.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

type AlertKindSpec = {
  readonly token: string;
  readonly about: string;
  readonly raisedBy: string;
  readonly id: (parts: never) => string;
};

export const ALERT_KIND_INFO = {
  DelayedEvent: {
    token: 'delayed',
    about: 'source',
    raisedBy: 'monitor',
    /** a group's first alert names the group (by the receivedAt of its first late event); its updates add `#<sequence>` */
    id: (p: { sla: string; source: string; startedAt: number; sequence?: number }): string => {
      const group = `delayed:${p.sla}:${p.source}:${iso(p.startedAt)}`;
      return p.sequence === undefined || p.sequence === 1 ? group : `${group}#${p.sequence}`;
    },
  },
  MissingData: {
    token: 'missing',
    about: 'source',
    raisedBy: 'monitor',
    /** `every`: the empty interval's start; `dailyBy`: the business day */
    id: (p: { sla: string; source: string } & ({ windowStart: number } | { day: string })): string =>
      'windowStart' in p ? `missing:${p.sla}:${p.source}:every:${iso(p.windowStart)}` : `missing:${p.sla}:${p.source}:daily:${p.day}`,
  },
  Resolved: {
    token: 'resolved',
    about: 'source',
    raisedBy: 'monitor',
    id: (p: { resolves: string }): string => `resolved:${p.resolves}`,
  },
  DeadlineMissed: {
    token: 'deadline',
    // the monitor's alerts all carry `source`; for a report's deadline it is the report
    about: 'source',
    raisedBy: 'monitor',
    id: (p: { report: string; status: string; day: string }): string => `deadline:${p.report}:${p.status}:${p.day}`,
  },
  ReportAmended: {
    token: 'amended',
    about: 'report',
    raisedBy: 'processor',
    /** the group as its KV key names it (base64url; `#<hash>` when long): the id is a Nats-Msg-Id header */
    id: (p: { report: string; day: string; groupKey: string; revision: number }): string => {
      const token = groupToken(p.groupKey);
      const group = token.startsWith('g') ? token.slice(1) : `#${token.slice(1)}`;
      return `amended:${p.report}:${p.day}:${group}:${p.revision}`;
    },
  },
  SagaParked: {
    token: 'saga',
    about: 'saga',
    raisedBy: 'saga orchestrator',
    /** each parking of a saga is its own alert */
    id: (p: { sagaId: string; parks: number }): string => `saga-parked:${p.sagaId}:${p.parks}`,
  },
  ReconDiscrepancies: {
    token: 'recon',
    about: 'reconciliation',
    raisedBy: 'reconciler',
    id: (p: { reconciliation: string; period: string }): string => `recon-${p.reconciliation}-${p.period}`,
  },
  CardinalityCapped: {
    token: 'capped',
    about: 'source',
    raisedBy: 'monitor (SLA sources), processor (realtime groups)',
    /** one per SLA (monitor) or report (processor's realtime view) and UTC day */
    id: (p: { sla: string; day: string } | { report: string; day: string }): string => ('sla' in p ? `capped:${p.sla}:${p.day}` : `capped-realtime:${p.report}:${p.day}`),
  },
} as const satisfies Record<string, AlertKindSpec>;

export type AlertKind = keyof typeof ALERT_KIND_INFO;

/** Every kind, each one selectable in a webhook's `kinds`. */
export const ALERT_KINDS = Object.keys(ALERT_KIND_INFO) as [AlertKind, ...AlertKind[]];

type Info = typeof ALERT_KIND_INFO;
export type AlertIdParts<K extends AlertKind> = Parameters<Info[K]['id']>[0];

/** The deterministic id of an alert of `kind`. */
export const alertId = <K extends AlertKind>(kind: K, parts: AlertIdParts<K>): string => (ALERT_KIND_INFO[kind].id as (p: AlertIdParts<K>) => string)(parts);

/** The kinds whose alerts name their subject by `source`. */
export type SourceAlertKind = { [K in AlertKind]: Info[K]['about'] extends 'source' ? K : never }[AlertKind];

/** What a publisher needs of an alert of kind K: its id, its kind and the field its subject names. */
export type AlertFor<K extends AlertKind> = K extends AlertKind ? { id: string; kind: K } & { [F in Info[K]['about']]: string } : never;
export type AnyAlert = AlertFor<AlertKind>;

/** `alerts.<token>.<name>`; a name may hold characters a subject token cannot (`.`, wildcards, spaces). */
export const alertKindSubject = (kind: AlertKind, name: string): string => `alerts.${ALERT_KIND_INFO[kind].token}.${name.replace(/[.*>\s]/g, '_') || '_'}`;

/** One alert as published on ALERTS: the body is the alert's JSON, `msgId` its Nats-Msg-Id header (its id, so a copy is dropped). */
export type AlertMessage = { subject: string; data: string; msgId: string };

export function alertMessage(alert: AnyAlert): AlertMessage {
  const about = (alert as Record<string, unknown>)[ALERT_KIND_INFO[alert.kind].about] as string;
  return { subject: alertKindSubject(alert.kind, about), data: JSON.stringify(alert), msgId: alert.id };
}
