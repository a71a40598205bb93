/**
 * Which events a report reads, and the group an event falls in.
 *
 * A group key is the canonical JSON array of the groupBy values in groupBy order
 * (`["store-17"]`, `["store-17","TW"]`), or "" when the report has no groupBy. JSON
 * makes it unambiguous (values may contain any character, and "1" stays apart from 1)
 * and ClickHouse can take it apart with JSONExtract. A missing data field and a null
 * one are the same group, as NULL is in SQL GROUP BY; `key` null is null too.
 * `data.<field>` names one top-level field: "data.a.b" reads the field named "a.b".
 */
import type { ReportConfig } from '../../core/config.ts';
import { ErrorCodes, TidemarkError } from '../../core/errors.ts';
import { canonicalJson, dataField } from '../../core/canonical.ts';
import type { TidemarkEvent } from '../../core/envelope.ts';

type Reader = (event: TidemarkEvent) => unknown;

function readerFor(report: ReportConfig, field: string): Reader {
  if (field === 'source') return (event) => event.source;
  if (field === 'type') return (event) => event.type;
  if (field === 'key') return (event) => event.key;
  if (field.startsWith('data.') && field.length > 'data.'.length) {
    const name = field.slice('data.'.length);
    return (event) => dataField(event.data, name) ?? null;
  }
  throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `reports.${report.name}.groupBy: "${field}" is not source, type, key or data.<field>`);
}

const compiled = new WeakMap<ReportConfig, (event: TidemarkEvent) => string>();

/** The report's group-key function; throws CONFIG_INVALID for a groupBy field it cannot read, so a processor can check its reports at start-up. */
export function compileGroupKey(report: ReportConfig): (event: TidemarkEvent) => string {
  let fn = compiled.get(report);
  if (!fn) {
    const readers = report.groupBy.map((field) => readerFor(report, field));
    fn = readers.length === 0 ? () => '' : (event) => canonicalJson(readers.map((read) => read(event)));
    compiled.set(report, fn);
  }
  return fn;
}

export const groupKey = (report: ReportConfig, event: TidemarkEvent): string => compileGroupKey(report)(event);

export const matchesReport = (report: ReportConfig, event: TidemarkEvent): boolean => report.types.includes(event.type);
