import { attemptKey, evolve } from './evolve.ts';
import type { Backoff, FailureReason, Kind, SagaDefinition, SagaEvent, SagaInput, SagaState, StepDefinition } from './types.ts';

/** Deterministic per attempt, so a re-sent command is dropped by JetStream's Nats-Msg-Id dedup. */
export const commandIdOf = (sagaId: string, step: string, kind: Kind, attempt: number): string => `${sagaId}:${step}:${kind}:${attempt}`;

/** The same for every attempt of one step: what a service dedups on so a retry after a lost reply does the work once. */
export const idempotencyKeyOf = (sagaId: string, step: string, kind: Kind): string => `${sagaId}:${step}:${kind}`;

/** Wait before attempt `n + 1`, after `n` counted attempts. */
export const backoffDelay = (backoff: Backoff, n: number): number => Math.min(backoff.max, Math.round(backoff.initial * backoff.factor ** (n - 1)));

type Ctx = { def: SagaDefinition; now: number; state: SagaState; out: SagaEvent[] };

const emit = (ctx: Ctx, event: SagaEvent): void => {
  ctx.out.push(event);
  ctx.state = evolve(ctx.state, event);
};

const stepOf = (def: SagaDefinition, name: string): StepDefinition | undefined => def.steps.find((s) => s.name === name);

function dispatch(ctx: Ctx, step: StepDefinition, kind: Kind): void {
  const { state, now } = ctx;
  const attempt = (state.attempts[attemptKey(kind, step.name)] ?? 0) + 1;
  const spec = kind === 'do' ? step : step.compensation!;
  let payload: unknown;
  try {
    payload = spec.payload({ sagaId: state.sagaId, input: state.input, steps: state.results, failure: state.failure });
  } catch (err) {
    // a mapping that throws will throw again: no attempt is spent on it and no retry helps
    fail(ctx, step, kind, attempt, 'payload', null, { message: (err as Error)?.message ?? String(err) }, now);
    return;
  }
  emit(ctx, {
    type: 'CommandDispatched',
    at: now,
    step: step.name,
    kind,
    attempt,
    commandId: commandIdOf(state.sagaId, step.name, kind, attempt),
    subject: spec.command,
    payload,
    deadline: now + spec.timeout,
  });
}

/** The last finished do-step that still needs undoing, compensations running in reverse order. */
function nextToUndo(ctx: Ctx): StepDefinition | undefined {
  const { state, def } = ctx;
  for (let i = state.done.length - 1; i >= 0; i--) {
    const step = stepOf(def, state.done[i]!);
    if (step?.compensation && !state.undone.includes(step.name)) return step;
  }
  return undefined;
}

/** Moves on from a settled state: the next step or undo, or the end of the saga. */
function advance(ctx: Ctx): void {
  const { state, def, now } = ctx;
  if (state.inFlight || state.retry) return;
  if (state.status === 'running') {
    const next = def.steps[state.done.length];
    if (next) dispatch(ctx, next, 'do');
    else emit(ctx, { type: 'SagaCompleted', at: now });
  } else if (state.status === 'compensating') {
    const next = nextToUndo(ctx);
    if (next) dispatch(ctx, next, 'undo');
    else emit(ctx, { type: 'SagaCompensated', at: now });
  }
}

function retryLater(ctx: Ctx, step: StepDefinition, kind: Kind, counted: number, backoff: Backoff): void {
  const delay = backoffDelay(backoff, counted);
  if (delay <= 0) return dispatch(ctx, step, kind);
  const attempt = (ctx.state.attempts[attemptKey(kind, step.name)] ?? 0) + 1;
  emit(ctx, { type: 'RetryScheduled', at: ctx.now, step: step.name, kind, attempt, retryAt: ctx.now + delay });
}

function fail(ctx: Ctx, step: StepDefinition, kind: Kind, attempt: number, reason: FailureReason, eventType: string | null, data: unknown, failedAt: number): void {
  const { def, now } = ctx;
  emit(ctx, { type: 'StepFailed', at: now, step: step.name, kind, attempt, reason, eventType, data });
  if (kind === 'do') {
    const { retry } = step;
    const retryable = reason === 'timeout' ? retry.onTimeout === 'retry' : reason === 'failure' && eventType !== null && retry.retryable.includes(eventType);
    if (retryable && attempt < retry.attempts) return retryLater(ctx, step, kind, attempt, retry.backoff);
    // a step that timed out may have happened: it is undone too, so undos must tolerate "nothing to undo"
    emit(ctx, { type: 'CompensationStarted', at: now, step: step.name, includeFailed: reason === 'timeout', failedAt });
    return advance(ctx);
  }
  const counted = attempt - (ctx.state.budgetFrom[attemptKey('undo', step.name)] ?? 0);
  if (reason !== 'payload' && counted < def.compensationRetry.attempts) return retryLater(ctx, step, kind, counted, def.compensationRetry.backoff);
  emit(ctx, { type: 'SagaParked', at: now, step: step.name, reason: reason === 'failure' ? `${eventType} after ${counted} attempts` : reason === 'timeout' ? `timed out after ${counted} attempts` : 'compensation payload failed' });
}

function onReply(ctx: Ctx, input: Extract<SagaInput, { type: 'Reply' }>): void {
  const { state } = ctx;
  const step = stepOf(ctx.def, input.step);
  const spec = input.kind === 'do' ? step : step?.compensation;
  if (!step || !spec) return;
  const busy = state.inFlight ?? state.retry ?? (state.parked ? { step: state.parked.step, kind: 'undo' as const } : null);
  if (!busy || busy.step !== input.step || busy.kind !== input.kind) return;
  if (input.kind === 'do' ? state.status !== 'running' : state.status !== 'compensating' && state.status !== 'parked') return;
  const lastAttempt = state.attempts[attemptKey(input.kind, input.step)] ?? 0;
  if (spec.success.includes(input.eventType)) {
    // a success from an earlier attempt still means the work is done
    if (input.attempt < 1 || input.attempt > lastAttempt) return;
    emit(ctx, { type: 'StepSucceeded', at: ctx.now, step: input.step, kind: input.kind, attempt: input.attempt, eventType: input.eventType, data: input.data });
    return advance(ctx);
  }
  // only the attempt in flight may fail: an older attempt's failure is stale news
  if (spec.failure.includes(input.eventType) && state.inFlight?.attempt === input.attempt) {
    fail(ctx, step, input.kind, input.attempt, 'failure', input.eventType, input.data, input.storedAt);
  }
}

function onTick(ctx: Ctx): void {
  const { state, now, def } = ctx;
  if (state.inFlight && now >= state.inFlight.deadline) {
    const { step, kind, attempt, deadline } = state.inFlight;
    const definition = stepOf(def, step);
    if (definition) fail(ctx, definition, kind, attempt, 'timeout', null, null, deadline);
  } else if (state.retry && now >= state.retry.at) {
    const definition = stepOf(def, state.retry.step);
    if (definition) dispatch(ctx, definition, state.retry.kind);
  }
}

/**
 * The saga's decision for one input, as the events to append. An input that changes
 * nothing (a duplicate trigger, a reply to a step long settled, an early tick) yields
 * none, which is what makes redelivery harmless.
 */
export function decide(def: SagaDefinition, state: SagaState, input: SagaInput): SagaEvent[] {
  const ctx: Ctx = { def, now: input.now, state, out: [] };
  switch (input.type) {
    case 'Start':
      if (state.status !== 'new') break;
      emit(ctx, { type: 'SagaStarted', at: input.now, sagaId: input.sagaId, name: def.name, triggerId: input.triggerId, input: input.input });
      advance(ctx);
      break;
    case 'Reply':
      onReply(ctx, input);
      break;
    case 'Tick':
      onTick(ctx);
      break;
    case 'Retry':
      if (state.status !== 'parked') break;
      emit(ctx, { type: 'SagaResumed', at: input.now });
      advance(ctx);
      break;
    case 'Abort':
      if (state.status === 'parked') emit(ctx, { type: 'SagaAborted', at: input.now, reason: input.reason });
      break;
  }
  return ctx.out;
}
