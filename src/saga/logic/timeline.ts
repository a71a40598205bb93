import { fold } from './evolve.ts';
import type { Kind, SagaEvent, SagaStatus } from './types.ts';

/** `abandoned`: a success of an earlier attempt settled the step while this one was out. */
export type AttemptOutcome = 'running' | 'succeeded' | 'failed' | 'timed_out' | 'abandoned';

export type AttemptRow = {
  step: string;
  kind: Kind;
  attempt: number;
  commandId: string;
  subject: string;
  outcome: AttemptOutcome;
  /** the reply type that settled it, if a reply did */
  eventType: string | null;
  dispatchedAt: number;
  endedAt: number | null;
  durationMs: number | null;
};

export type SagaSummary = {
  sagaId: string;
  name: string;
  status: SagaStatus;
  triggerId: string;
  input: unknown;
  startedAt: number;
  updatedAt: number;
  endedAt: number | null;
  durationMs: number | null;
  /** the step being worked on (or waiting for an operator) */
  currentStep: string | null;
  failedStep: string | null;
  failure: string | null;
  compensationStartedAt: number | null;
  parks: number;
  /** events in the saga log; grows with every change, so it orders copies of a row */
  version: number;
};

/** One row per command sent, in the order sent, with how and when each ended. */
export function attemptRows(events: readonly SagaEvent[]): AttemptRow[] {
  const rows: AttemptRow[] = [];
  const find = (step: string, kind: Kind, attempt: number) => rows.find((r) => r.step === step && r.kind === kind && r.attempt === attempt);
  const settle = (row: AttemptRow | undefined, outcome: AttemptOutcome, at: number, eventType: string | null) => {
    if (!row || row.outcome !== 'running') return;
    Object.assign(row, { outcome, eventType, endedAt: at, durationMs: at - row.dispatchedAt });
  };
  for (const event of events) {
    if (event.type === 'CommandDispatched') {
      const { step, kind, attempt, commandId, subject, at } = event;
      rows.push({ step, kind, attempt, commandId, subject, outcome: 'running', eventType: null, dispatchedAt: at, endedAt: null, durationMs: null });
    } else if (event.type === 'StepSucceeded') {
      settle(find(event.step, event.kind, event.attempt), 'succeeded', event.at, event.eventType);
      for (const other of rows.filter((r) => r.step === event.step && r.kind === event.kind)) settle(other, 'abandoned', event.at, null);
    } else if (event.type === 'StepFailed') {
      settle(find(event.step, event.kind, event.attempt), event.reason === 'timeout' ? 'timed_out' : 'failed', event.at, event.eventType);
    }
  }
  return rows;
}

export function summarize(events: readonly SagaEvent[]): SagaSummary {
  const state = fold(events);
  const current = state.inFlight?.step ?? state.retry?.step ?? state.parked?.step ?? null;
  const failure = state.failure;
  return {
    sagaId: state.sagaId,
    name: state.name,
    status: state.status,
    triggerId: state.triggerId,
    input: state.input,
    startedAt: state.startedAt,
    updatedAt: state.updatedAt,
    endedAt: state.endedAt,
    durationMs: state.endedAt === null ? null : state.endedAt - state.startedAt,
    currentStep: current,
    failedStep: state.compensationStartedAt !== null ? (failure?.step ?? null) : null,
    failure: state.compensationStartedAt !== null && failure ? (failure.type ?? failure.reason) : null,
    compensationStartedAt: state.compensationStartedAt,
    parks: state.parks,
    version: events.length,
  };
}
