import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/core/canonical.ts';

/** The definition, written the slow and obvious way: keys sorted at every level. */
function reference(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
  const object = value as Record<string, unknown>;
  return `{${Object.keys(object)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${reference(object[key])}`)
    .join(',')}}`;
}

/** The same JSON value with every object's keys in another order. */
function shuffled(value: unknown, seed: number): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v, i) => shuffled(v, seed + i));
  const entries = Object.entries(value as Record<string, unknown>);
  entries.sort((a, b) => ((a[0].length * 31 + seed) % 7) - ((b[0].length * 31 + seed) % 7) || (seed % 2 ? 1 : -1) * a[0].localeCompare(b[0]));
  return Object.fromEntries(entries.map(([k, v]) => [k, shuffled(v, seed + 1)]));
}

describe('canonicalJson', () => {
  it('is the sorted-keys text of any JSON value, whatever order its keys came in', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(), (value, seed) => {
        expect(canonicalJson(value)).toBe(reference(value));
        expect(canonicalJson(shuffled(value, seed))).toBe(reference(value));
      }),
      { numRuns: 2_000 },
    );
  });

  it('keeps integer-like keys in text order and strings apart from numbers', () => {
    expect(canonicalJson({ 10: 'a', 9: 'b' })).toBe('{"10":"a","9":"b"}');
    expect(canonicalJson({ b: 1, a: '1' })).toBe('{"a":"1","b":1}');
    expect(canonicalJson(['7', 7, null])).toBe('["7",7,null]');
  });
});
