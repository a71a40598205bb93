/**
 * Every alert kind the product raises, in one place: the subject token it is published
 * under (`alerts.<token>.<source>`) and the role that raises it. The config schema
 * (webhook `kinds`), the publishers and the alerts table all read this record, so a
 * new kind is one line here and the compiler finds every place that must know it.
 */
export const ALERT_KIND_INFO = {
  DelayedEvent: { token: 'delayed', raisedBy: 'monitor' },
  MissingData: { token: 'missing', raisedBy: 'monitor' },
  Resolved: { token: 'resolved', raisedBy: 'monitor' },
  DeadlineMissed: { token: 'deadline', raisedBy: 'monitor' },
  ReportAmended: { token: 'amended', raisedBy: 'processor' },
  SagaParked: { token: 'saga', raisedBy: 'saga orchestrator' },
  ReconDiscrepancies: { token: 'recon', raisedBy: 'reconciler' },
  CardinalityCapped: { token: 'capped', raisedBy: 'monitor (SLA sources), processor (realtime groups)' },
} as const satisfies Record<string, { token: string; raisedBy: string }>;

export type AlertKind = keyof typeof ALERT_KIND_INFO;

export const ALERT_KINDS = Object.keys(ALERT_KIND_INFO) as [AlertKind, ...AlertKind[]];

/** `alerts.<token>.<name>`; a name may hold characters a subject token cannot (`.`, wildcards, spaces). */
export const alertKindSubject = (kind: AlertKind, name: string): string =>
  `alerts.${ALERT_KIND_INFO[kind].token}.${name.replace(/[.*>\s]/g, '_') || '_'}`;
