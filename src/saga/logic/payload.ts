import type { PayloadContext, PayloadFn } from './types.ts';

/**
 * Declarative payloads for config files: any string starting with `$` is a path into
 * the payload context (`$sagaId`, `$input.order.id`, `$steps.payment.chargeId`,
 * `$failure.data.reason`); `$$` escapes a literal `$`; everything else is copied.
 */
const ROOTS = ['sagaId', 'input', 'steps', 'failure'] as const;

const isPath = (value: string): boolean => value.startsWith('$') && !value.startsWith('$$');

function read(ctx: PayloadContext, path: string): unknown {
  let node: unknown = ctx;
  for (const token of path.slice(1).split('.')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[token];
  }
  return node;
}

function fill(template: unknown, ctx: PayloadContext): unknown {
  if (typeof template === 'string') {
    if (isPath(template)) return read(ctx, template);
    return template.startsWith('$$') ? template.slice(1) : template;
  }
  if (Array.isArray(template)) return template.map((item) => fill(item, ctx));
  if (template !== null && typeof template === 'object') {
    return Object.fromEntries(Object.entries(template).map(([key, value]) => [key, fill(value, ctx)]));
  }
  return template;
}

export function compilePayload(mapping: unknown): PayloadFn {
  if (typeof mapping === 'function') return mapping as PayloadFn;
  return (ctx) => fill(mapping, ctx);
}

/**
 * Paths that can never resolve: an unknown root, or a step that has not finished by
 * the time the payload is built. Each issue names where in the mapping it sits.
 */
export function payloadIssues(mapping: unknown, readableSteps: readonly string[], at: string): string[] {
  if (typeof mapping === 'function') return [];
  if (typeof mapping === 'string') {
    if (!isPath(mapping)) return [];
    const [root, step] = mapping.slice(1).split('.');
    if (!ROOTS.includes(root as (typeof ROOTS)[number])) return [`${at}: "${mapping}" starts with an unknown root (use $${ROOTS.join(', $')})`];
    if (root === 'steps' && (step === undefined || !readableSteps.includes(step))) {
      return [`${at}: "${mapping}" reads a step that has not finished by then (readable: ${readableSteps.join(', ') || 'none'})`];
    }
    return [];
  }
  if (Array.isArray(mapping)) return mapping.flatMap((item, i) => payloadIssues(item, readableSteps, `${at}[${i}]`));
  if (mapping !== null && typeof mapping === 'object') {
    return Object.entries(mapping).flatMap(([key, value]) => payloadIssues(value, readableSteps, `${at}.${key}`));
  }
  return [];
}
