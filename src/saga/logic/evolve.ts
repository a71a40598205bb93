import type { Kind, SagaEvent, SagaState } from './types.ts';

export const attemptKey = (kind: Kind, step: string): string => `${kind}:${step}`;

export const initialState = (): SagaState => ({
  status: 'new',
  sagaId: '',
  name: '',
  triggerId: '',
  input: null,
  startedAt: 0,
  updatedAt: 0,
  endedAt: null,
  results: {},
  done: [],
  undone: [],
  inFlight: null,
  retry: null,
  attempts: {},
  budgetFrom: {},
  failure: null,
  parked: null,
  parks: 0,
  compensationStartedAt: null,
});

export function evolve(state: SagaState, event: SagaEvent): SagaState {
  const s: SagaState = { ...state, updatedAt: event.at };
  switch (event.type) {
    case 'SagaStarted':
      return { ...s, status: 'running', sagaId: event.sagaId, name: event.name, triggerId: event.triggerId, input: event.input, startedAt: event.at };
    case 'CommandDispatched':
      return {
        ...s,
        inFlight: { step: event.step, kind: event.kind, attempt: event.attempt, commandId: event.commandId, subject: event.subject, payload: event.payload, deadline: event.deadline, at: event.at },
        retry: null,
        attempts: { ...s.attempts, [attemptKey(event.kind, event.step)]: event.attempt },
      };
    case 'StepSucceeded':
      if (event.kind === 'do') return { ...s, inFlight: null, retry: null, failure: null, done: [...s.done, event.step], results: { ...s.results, [event.step]: event.data } };
      // a late success of a parked undo resumes compensating by itself
      return { ...s, status: s.status === 'parked' ? 'compensating' : s.status, parked: null, inFlight: null, retry: null, undone: [...s.undone, event.step] };
    case 'StepFailed': {
      const failure = { step: event.step, type: event.eventType, reason: event.reason, data: event.data, at: event.at, failedAt: event.at };
      return { ...s, inFlight: null, failure: event.kind === 'do' ? failure : s.failure };
    }
    case 'RetryScheduled':
      return { ...s, retry: { step: event.step, kind: event.kind, attempt: event.attempt, at: event.retryAt } };
    case 'CompensationStarted':
      return {
        ...s,
        status: 'compensating',
        compensationStartedAt: event.at,
        done: event.includeFailed ? [...s.done, event.step] : s.done,
        failure: s.failure ? { ...s.failure, failedAt: event.failedAt } : s.failure,
      };
    case 'SagaCompleted':
      return { ...s, status: 'completed', endedAt: event.at };
    case 'SagaCompensated':
      return { ...s, status: 'compensated', endedAt: event.at };
    case 'SagaParked':
      return { ...s, status: 'parked', retry: null, parked: { step: event.step, reason: event.reason, at: event.at }, parks: s.parks + 1 };
    case 'SagaResumed': {
      const key = attemptKey('undo', s.parked?.step ?? '');
      return { ...s, status: 'compensating', parked: null, budgetFrom: { ...s.budgetFrom, [key]: s.attempts[key] ?? 0 } };
    }
    case 'SagaAborted':
      return { ...s, status: 'aborted', endedAt: event.at };
  }
}

export const fold = (events: readonly SagaEvent[]): SagaState => events.reduce(evolve, initialState());

/** The next moment the clock alone can move this saga (a deadline or the end of a backoff), if any. */
export const dueAt = (state: SagaState): number | null => state.inFlight?.deadline ?? state.retry?.at ?? null;
