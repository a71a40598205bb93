import type { Placeholder } from './lexer.ts';

/**
 * `param_x` values arrive in ClickHouse's escaped text form, exactly what the engine should
 * bind. chDB's binder, though, takes JS values and backslash-escapes every string it is given,
 * so a value is adapted until escaping it yields what the client sent:
 * - no escapable character: passed through (escaping changes nothing);
 * - `\N`: NULL;
 * - a scalar type: unescaped here, re-escaped by chDB to the same value;
 * - a composite type (Array, Map, Tuple…) with quotes or backslashes inside: escaping would break
 *   its inner literals, so the placeholder becomes `CAST({x:String} AS Type)`, which parses the
 *   exact text the client sent.
 */

const ESCAPABLE = /[\\\0\b\f\n\r\t]/;
const COMPOSITE = /^(?:(?:Nullable|LowCardinality)\s*\(\s*)*(?:Array|Map|Tuple|Nested|Variant|Dynamic|JSON|Object)\b/i;
const RAW_PREFIX = '__tidemark_raw_';

const UNESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', '0': '\0', a: '\x07', v: '\v', e: '\x1b' };

/** Reverses ClickHouse's Escaped (TSV) string escaping. */
export function unescapeTsv(value: string): string {
  return value.replace(/\\(x[0-9A-Fa-f]{2}|.)/gs, (_m, esc: string) => {
    if (esc.length === 3) return String.fromCharCode(parseInt(esc.slice(1), 16));
    return UNESCAPES[esc] ?? esc;
  });
}

export type BoundQuery = { sql: string; params: Record<string, string | null> };

export function bindQueryParams(sql: string, placeholders: ReadonlyArray<Placeholder>, raw: ReadonlyMap<string, string>): BoundQuery {
  const params: Record<string, string | null> = {};
  const rewrites: Array<{ start: number; end: number; with: string }> = [];
  for (const [name, value] of raw) {
    if (!ESCAPABLE.test(value)) params[name] = value;
    else if (value === '\\N') params[name] = null;
    else params[name] = unescapeTsv(value);
  }
  for (const placeholder of placeholders) {
    const value = raw.get(placeholder.name);
    if (value === undefined || !ESCAPABLE.test(value) || value === '\\N' || !COMPOSITE.test(placeholder.type)) continue;
    const rawName = `${RAW_PREFIX}${placeholder.name}`;
    params[rawName] = value;
    rewrites.push({ start: placeholder.start, end: placeholder.end, with: `CAST({${rawName}:String} AS ${placeholder.type})` });
  }
  return { sql: rewrites.length > 0 ? replaceSpans(sql, rewrites) : sql, params };
}

/** Replaces placeholder spans in `text` (which must be sorted by position and not overlap). */
function replaceSpans(text: string, spans: ReadonlyArray<{ start: number; end: number; with: string }>): string {
  let out = '';
  let at = 0;
  for (const span of spans) {
    out += text.slice(at, span.start) + span.with;
    at = span.end;
  }
  return out + text.slice(at);
}
