/**
 * Query parameters written into the statement as typed literals, for the embedded
 * engine. chDB binds parameters through one chain for the whole process (its binder is
 * not isolated per connection), so a long parameterised scan held up every other
 * parameterised call of the process — measured: a 9 s scan delayed a one-row SELECT by
 * 8.9 s. Inlined, a call waits only for its own connection. A value becomes
 * `_CAST(literal, 'Type')`, the form ClickHouse's own substitution gives it.
 */

const PLACEHOLDER = /\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]+?)\s*\}/g;

const quoted = (text: string): string => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** A JS value as a ClickHouse literal. */
export function sqlLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'string') return quoted(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`a query parameter is not a finite number: ${value}`);
    return String(value);
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value instanceof Date) return `fromUnixTimestamp64Milli(${value.getTime()}, 'UTC')`;
  if (Array.isArray(value)) return `[${value.map(sqlLiteral).join(', ')}]`;
  const entries = value instanceof Map ? [...value.entries()] : Object.entries(value as object);
  return `map(${entries.flatMap(([k, v]) => [sqlLiteral(k), sqlLiteral(v)]).join(', ')})`;
}

/** `sql` with each `{name:Type}` whose name is in `params` replaced by its typed literal. */
export function inlineParams(sql: string, params: Record<string, unknown>): string {
  return sql.replace(PLACEHOLDER, (placeholder, name: string, type: string) => {
    if (!Object.hasOwn(params, name)) return placeholder;
    if (type === 'Identifier') return `\`${String(params[name]).replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;
    return `_CAST(${sqlLiteral(params[name])}, ${quoted(type)})`;
  });
}
