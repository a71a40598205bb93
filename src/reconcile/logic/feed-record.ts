import type { ReconSideConfig } from '../../core/config.ts';
import { parseOccurredAt } from '../../core/envelope.ts';
import { fieldText } from './values.ts';
import type { ReconRecord, ReconSpec } from './types.ts';

/** A dotted path through own properties only ("data.amount"), so "__proto__" and friends never resolve. */
function at(value: unknown, path: string): unknown {
  let node = value;
  for (const part of path.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/**
 * One feed message as a record of its reconciliation: key parts and compared fields
 * read at their paths (the logical name unless `fields` maps it), the business time
 * at `time` (ISO-8601 with offset or epoch ms; the arrival time when absent).
 */
export function feedRecord(spec: Pick<ReconSpec, 'key' | 'fields'>, side: ReconSideConfig, body: unknown, arrivedAt: number): ReconRecord | { reason: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { reason: 'a feed record must be a JSON object' };
  const path = (field: string) => side.fields[field] ?? field;
  const key: string[] = [];
  for (const field of spec.key) {
    const part = fieldText(at(body, path(field)));
    if (part === null) return { reason: `key field ${field} (at ${path(field)}) is missing` };
    key.push(part);
  }
  const fields = Object.fromEntries(Object.keys(spec.fields).map((f) => [f, fieldText(at(body, path(f)))]));
  const rawTime = at(body, side.time ?? 'occurredAt');
  if (rawTime === undefined || rawTime === null) return { key, fields, time: arrivedAt };
  const time = parseOccurredAt(rawTime);
  if (typeof time !== 'number') return { reason: time.reason };
  return { key, fields, time };
}
