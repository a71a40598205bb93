import type { ClickHouseClient } from '@clickhouse/client';
import { attemptRows, summarize } from './logic/timeline.ts';
import type { SagaEvent } from './logic/types.ts';

export type SagaRow = {
  saga_id: string;
  name: string;
  status: string;
  trigger_id: string;
  input: string;
  current_step: string;
  failed_step: string;
  failure: string;
  parks: number;
  started_at: number;
  updated_at: number;
  ended_at: number | null;
  duration_ms: number | null;
  compensation_started_at: number | null;
  version: number;
};

export type SagaStepRow = {
  saga_id: string;
  name: string;
  step: string;
  kind: 'do' | 'undo';
  attempt: number;
  /** position in the saga's timeline: orders attempts dispatched within the same millisecond */
  seq: number;
  command_id: string;
  subject: string;
  outcome: string;
  event_type: string;
  dispatched_at: number;
  ended_at: number | null;
  duration_ms: number | null;
  version: number;
};

/** The saga's row and one row per command attempt, all at the log's version. */
export function sagaRows(events: readonly SagaEvent[]): { saga: SagaRow; steps: SagaStepRow[] } {
  const s = summarize(events);
  const saga: SagaRow = {
    saga_id: s.sagaId,
    name: s.name,
    status: s.status,
    trigger_id: s.triggerId,
    input: JSON.stringify(s.input ?? null),
    current_step: s.currentStep ?? '',
    failed_step: s.failedStep ?? '',
    failure: s.failure ?? '',
    parks: s.parks,
    started_at: s.startedAt,
    updated_at: s.updatedAt,
    ended_at: s.endedAt,
    duration_ms: s.durationMs,
    compensation_started_at: s.compensationStartedAt,
    version: s.version,
  };
  const steps = attemptRows(events).map((a, seq) => ({
    saga_id: s.sagaId,
    name: s.name,
    step: a.step,
    kind: a.kind,
    attempt: a.attempt,
    seq,
    command_id: a.commandId,
    subject: a.subject,
    outcome: a.outcome,
    event_type: a.eventType ?? '',
    dispatched_at: a.dispatchedAt,
    ended_at: a.endedAt,
    duration_ms: a.durationMs,
    version: s.version,
  }));
  return { saga, steps };
}

/**
 * Idempotent: `sagas` is keyed on saga_id and `saga_steps` on (saga_id, step, kind,
 * attempt), both ReplacingMergeTree(version), so a re-sent row collapses and an older
 * copy never wins over a newer one. Refused rows: the projector isolates and files them
 * (refused-rows.ts insertOrFile).
 */
export async function insertSagaRows(client: ClickHouseClient, db: string, rows: { sagas: SagaRow[]; steps: SagaStepRow[] }): Promise<void> {
  if (rows.sagas.length) await client.insert({ table: `${db}.sagas`, values: rows.sagas, format: 'JSONEachRow' });
  if (rows.steps.length) await client.insert({ table: `${db}.saga_steps`, values: rows.steps, format: 'JSONEachRow' });
}
