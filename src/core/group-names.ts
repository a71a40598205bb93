/**
 * A group as people read it: the groupBy fields named, each with its value (`{source: 'store-9'}`),
 * where `group_key` is the canonical JSON array (`["store-9"]`) that identifies the group.
 * A string value reads as itself; any other value (a number, null, an object) as its JSON
 * text, as ClickHouse's JSONExtractArrayRaw gives it, so migrated rows and new rows agree.
 * A key whose arity no longer matches the groupBy (the config changed since) is named by
 * position, `1`, `2`, …
 */
import { canonicalJson } from './canonical.ts';

export type GroupNames = Record<string, string>;

function values(groupKey: string): unknown[] {
  if (groupKey === '') return [];
  try {
    const parsed: unknown = JSON.parse(groupKey);
    return Array.isArray(parsed) ? parsed : [parsed];
  } catch {
    return [groupKey];
  }
}

const text = (value: unknown): string => (typeof value === 'string' ? value : canonicalJson(value));

export function namedGroup(groupBy: readonly string[], groupKey: string): GroupNames {
  const parts = values(groupKey);
  const names = parts.length === groupBy.length ? groupBy : parts.map((_, i) => String(i + 1));
  return Object.fromEntries(parts.map((value, i) => [names[i]!, text(value)]));
}

/** One line for a table cell or a page: `store-9`, `store-9 · TW`, or `(all)` for a report without groupBy. */
export function groupLabel(groupKey: string): string {
  const parts = values(groupKey);
  return parts.length === 0 ? '(all)' : parts.map(text).join(' · ');
}
