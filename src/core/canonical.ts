/**
 * JSON text with object keys sorted, so one JSON value has exactly one text: two
 * values are equal (as JSON) exactly when their texts are equal. Group keys and
 * `uniq` depend on that. A JSON string and a JSON number stay distinct ("7" is not 7),
 * because a customer id "007" must not collapse into "7".
 */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined || typeof value !== 'object') return JSON.stringify(value ?? null) ?? 'null';
  if (Array.isArray(value)) return value.every(isScalar) ? JSON.stringify(value) : `[${value.map(canonicalJson).join(',')}]`;
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object);
  // the common event's data (a few scalar fields, keys already in order) is its own canonical text
  if (keys.every((key, i) => isScalar(object[key]) && (i === 0 || keys[i - 1]! < key))) return JSON.stringify(object);
  const members = keys.sort().map((key) => `${JSON.stringify(key)}:${canonicalJson(object[key])}`);
  return `{${members.join(',')}}`;
}

/** A value JSON.stringify writes as canonicalJson does. */
const isScalar = (value: unknown): boolean => value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';

/** A data field read as an own property only, so "constructor" or "toString" never reaches Object.prototype. */
export const dataField = (data: Readonly<Record<string, unknown>>, field: string): unknown =>
  Object.hasOwn(data, field) ? data[field] : undefined;
