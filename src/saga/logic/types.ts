/** A forward step is `do`; its compensation is `undo`. */
export type Kind = 'do' | 'undo';

export type Backoff = { initial: number; factor: number; max: number };

export type FailureInfo = { step: string; type: string | null; reason: FailureReason; data: unknown };

/** What a payload mapping can read: the trigger's data, earlier steps' success data and, for undos, the failure. */
export type PayloadContext = { sagaId: string; input: unknown; steps: Readonly<Record<string, unknown>>; failure: FailureInfo | null };
export type PayloadFn = (ctx: PayloadContext) => unknown;

export type CompensationDefinition = {
  command: string;
  payload: PayloadFn;
  success: readonly string[];
  failure: readonly string[];
  timeout: number;
};

export type StepDefinition = {
  name: string;
  command: string;
  payload: PayloadFn;
  success: readonly string[];
  failure: readonly string[];
  timeout: number;
  retry: { attempts: number; backoff: Backoff; retryable: readonly string[]; onTimeout: 'retry' | 'compensate' };
  compensation?: CompensationDefinition;
};

/** A validated definition with payload mappings compiled to functions (see definition.ts). */
export type SagaDefinition = {
  name: string;
  steps: readonly StepDefinition[];
  compensationRetry: { attempts: number; backoff: Backoff };
};

/** `payload`: a mapping threw, so no command could be built. */
export type FailureReason = 'failure' | 'timeout' | 'payload';

export type SagaEvent =
  | { type: 'SagaStarted'; at: number; sagaId: string; name: string; triggerId: string; input: unknown }
  | { type: 'CommandDispatched'; at: number; step: string; kind: Kind; attempt: number; commandId: string; subject: string; payload: unknown; deadline: number }
  | { type: 'StepSucceeded'; at: number; step: string; kind: Kind; attempt: number; eventType: string; data: unknown }
  | { type: 'StepFailed'; at: number; step: string; kind: Kind; attempt: number; reason: FailureReason; eventType: string | null; data: unknown }
  | { type: 'RetryScheduled'; at: number; step: string; kind: Kind; attempt: number; retryAt: number }
  /** `failedAt`: when the failure became known (the reply's store time, or the deadline), so compensation latency is measurable. */
  | { type: 'CompensationStarted'; at: number; step: string; includeFailed: boolean; failedAt: number }
  | { type: 'SagaCompleted'; at: number }
  | { type: 'SagaCompensated'; at: number }
  | { type: 'SagaParked'; at: number; step: string; reason: string }
  | { type: 'SagaResumed'; at: number }
  | { type: 'SagaAborted'; at: number; reason: string };

export type SagaStatus = 'new' | 'running' | 'compensating' | 'parked' | 'completed' | 'compensated' | 'aborted';

export const TERMINAL: ReadonlySet<SagaStatus> = new Set(['completed', 'compensated', 'aborted']);

export type InFlight = { step: string; kind: Kind; attempt: number; commandId: string; subject: string; payload: unknown; deadline: number; at: number };

export type SagaState = {
  status: SagaStatus;
  sagaId: string;
  name: string;
  triggerId: string;
  input: unknown;
  startedAt: number;
  updatedAt: number;
  endedAt: number | null;
  /** success data of finished do-steps, for later payloads */
  results: Record<string, unknown>;
  /** do-steps to undo if the saga fails, in the order they finished */
  done: string[];
  undone: string[];
  inFlight: InFlight | null;
  /** an attempt waiting out its backoff */
  retry: { step: string; kind: Kind; attempt: number; at: number } | null;
  /** last attempt dispatched per `kind:step` */
  attempts: Record<string, number>;
  /** attempts up to this number do not count against the budget (an operator's retry resets it) */
  budgetFrom: Record<string, number>;
  failure: (FailureInfo & { at: number; failedAt: number }) | null;
  parked: { step: string; reason: string; at: number } | null;
  parks: number;
  compensationStartedAt: number | null;
};

export type SagaInput =
  | { type: 'Start'; now: number; sagaId: string; triggerId: string; input: unknown }
  | { type: 'Reply'; now: number; step: string; kind: Kind; attempt: number; eventType: string; data: unknown; storedAt: number }
  | { type: 'Tick'; now: number }
  | { type: 'Retry'; now: number }
  | { type: 'Abort'; now: number; reason: string };
