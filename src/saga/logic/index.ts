export { backoffDelay, commandIdOf, decide, idempotencyKeyOf } from './decide.ts';
export { attemptKey, dueAt, evolve, fold, initialState } from './evolve.ts';
export { compilePayload, payloadIssues } from './payload.ts';
export { attemptRows, summarize, type AttemptOutcome, type AttemptRow, type SagaSummary } from './timeline.ts';
export * from './types.ts';
