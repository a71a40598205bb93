import type { z } from 'zod';
import { SagaDefinitionSchema, type SagaDefinitionConfig, type SagaDefinitionInput } from '../core/config.ts';
import { formatDuration } from '../core/duration.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { compilePayload, payloadIssues } from './logic/payload.ts';
import type { PayloadFn, SagaDefinition } from './logic/types.ts';
import { COMMAND_PREFIX } from './subjects.ts';

/** A payload is a mapping with `$` paths (as in the config file) or a function of the saga's context. */
export type PayloadSpec = PayloadFn | Record<string, unknown>;

type StepInput = SagaDefinitionInput['steps'][number];
type CompensationInput = NonNullable<StepInput['compensation']>;
export type StepSpec = Omit<StepInput, 'payload' | 'compensation'> & {
  payload?: PayloadSpec;
  compensation?: Omit<CompensationInput, 'payload'> & { payload?: PayloadSpec };
};
/** What `defineSaga` takes: the config file's shape, durations as "5s" or milliseconds. */
export type SagaSpec = Omit<SagaDefinitionInput, 'steps'> & { steps: StepSpec[] };

const SUBJECT_TOKEN = /^[^\s.*>]+$/;

const pathOf = (path: ReadonlyArray<PropertyKey>): string => path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');

const zodIssues = (error: z.ZodError): string[] =>
  error.issues.map((issue) => (issue.code === 'unrecognized_keys' ? `${pathOf(issue.path)}${issue.path.length ? '.' : ''}${issue.keys.join(', ')}: unknown key` : `${pathOf(issue.path) || '(top level)'}: ${issue.message}`));

function subjectIssues(subject: string, at: string): string[] {
  if (!subject.startsWith(COMMAND_PREFIX)) return [`${at}: "${subject}" must start with ${COMMAND_PREFIX} so the SAGAS stream keeps and dedups it`];
  return subject.split('.').every((t) => SUBJECT_TOKEN.test(t)) ? [] : [`${at}: "${subject}" is not a literal NATS subject`];
}

/** What zod cannot see: subjects, overlapping reply types, and payload paths that could never resolve. */
function semanticIssues(def: SagaDefinitionConfig): string[] {
  const issues: string[] = [];
  const names = def.steps.map((s) => s.name);
  def.steps.forEach((step, i) => {
    const at = `steps[${i}]`;
    if (names.indexOf(step.name) !== i) issues.push(`${at}.name: "${step.name}" is used by an earlier step`);
    issues.push(...subjectIssues(step.command, `${at}.command`));
    for (const type of step.success.filter((t) => step.failure.includes(t))) issues.push(`${at}: "${type}" is both a success and a failure`);
    for (const type of step.retry.retryable.filter((t) => !step.failure.includes(t))) issues.push(`${at}.retry.retryable: "${type}" is not one of the step's failure types`);
    issues.push(...payloadIssues(step.payload, names.slice(0, i), `${at}.payload`));
    const undo = step.compensation;
    if (!undo) return;
    issues.push(...subjectIssues(undo.command, `${at}.compensation.command`));
    for (const type of undo.success.filter((t) => undo.failure.includes(t))) issues.push(`${at}.compensation: "${type}" is both a success and a failure`);
    issues.push(...payloadIssues(undo.payload, names.slice(0, i + 1), `${at}.compensation.payload`));
  });
  return issues;
}

const invalid = (origin: string, issues: string[]): TidemarkError =>
  new TidemarkError(ErrorCodes.SAGA_DEFINITION_INVALID, `invalid saga definition ${origin}:\n${issues.map((i) => `  ${i}`).join('\n')}`);

function compile(def: SagaDefinitionConfig): SagaDefinition {
  return {
    name: def.name,
    compensationRetry: def.compensationRetry,
    steps: def.steps.map(({ compensation, ...step }) => ({
      ...step,
      payload: compilePayload(step.payload),
      ...(compensation ? { compensation: { ...compensation, payload: compilePayload(compensation.payload) } } : {}),
    })),
  };
}

/** Validates a definition (the config file's rules, plus subjects and payload paths) and compiles its payloads. */
export function defineSaga(spec: SagaSpec | SagaDefinitionConfig, origin = `"${(spec as { name?: unknown }).name ?? '?'}"`): SagaDefinition {
  const parsed = SagaDefinitionSchema.safeParse(spec);
  if (!parsed.success) throw invalid(origin, zodIssues(parsed.error));
  const issues = semanticIssues(parsed.data);
  if (issues.length) throw invalid(origin, issues);
  return compile(parsed.data);
}

/**
 * The set an orchestrator runs: names unique, and no timeout longer than the SAGAS
 * dedup window — a command may be re-sent until its deadline, and the re-send must
 * still be recognised as a duplicate.
 */
export function checkDefinitions(definitions: readonly SagaDefinition[], duplicateWindowMs: number): void {
  const issues: string[] = [];
  definitions.forEach((def, i) => {
    if (definitions.findIndex((d) => d.name === def.name) !== i) issues.push(`"${def.name}" is defined twice`);
    for (const step of def.steps) {
      for (const [what, timeout] of [['timeout', step.timeout], ['compensation timeout', step.compensation?.timeout ?? 0]] as const) {
        if (timeout > duplicateWindowMs) {
          issues.push(`${def.name}.${step.name}: ${what} ${formatDuration(timeout)} is longer than sagas.stream.duplicateWindow ${formatDuration(duplicateWindowMs)}`);
        }
      }
    }
  });
  if (issues.length) throw invalid('set', issues);
}
