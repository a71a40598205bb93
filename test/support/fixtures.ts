/**
 * Inputs for the tests: reports go through the real config schema, so durations and
 * defaults are what production sees. Input, never expected values: the oracle in
 * oracle.ts does not import this.
 */
import { parseConfig, type ReportConfig } from '../../src/core/config.ts';
import type { TidemarkEvent } from '../../src/core/envelope.ts';

export function makeReport(report: Record<string, unknown>): ReportConfig {
  return parseConfig({ reports: [{ name: 'r', types: ['sale'], measures: { n: { fn: 'count' } }, ...report }] }).reports[0]!;
}

let nextSeq = 0;

export function makeEvent(event: Partial<TidemarkEvent> = {}): TidemarkEvent {
  nextSeq += 1;
  return { id: `e-${nextSeq}`, type: 'sale', source: 'store-1', key: null, occurredAt: 0, receivedAt: 0, data: {}, seq: nextSeq, ...event };
}
