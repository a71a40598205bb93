import { attemptRows, summarize } from './logic/timeline.ts';
import type { SagaRecord } from './store.ts';

/** 850ms, 1.25s, 3m 20s: short enough for a table, exact enough to compare steps. */
export function formatMs(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1_000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(2).replace(/\.?0+$/, '')}s`;
  return `${Math.floor(ms / 60_000)}m ${Math.round((ms % 60_000) / 1_000)}s`;
}

const iso = (ms: number): string => new Date(ms).toISOString();

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Newest first; running sagas show their age so far as their duration. */
export function formatList(records: readonly SagaRecord[], now: number): string {
  const summaries = records.map((r) => summarize(r.events)).sort((a, b) => b.startedAt - a.startedAt);
  if (!summaries.length) return 'no sagas';
  return table(
    ['SAGA', 'STATUS', 'STEP', 'STARTED', 'DURATION'],
    summaries.map((s) => [s.sagaId, s.status, s.currentStep ?? '-', iso(s.startedAt), s.durationMs === null ? `${formatMs(now - s.startedAt)} so far` : formatMs(s.durationMs)]),
  );
}

/** The saga's status, what failed, and one line per command with its offset from the start and its duration. */
export function formatShow(record: SagaRecord, now: number): string {
  const s = summarize(record.events);
  const lines = [
    `saga      ${s.sagaId} (${s.name})`,
    `status    ${s.status}${s.status === 'parked' ? `  → tidemark saga retry ${s.sagaId}  |  tidemark saga abort ${s.sagaId}` : ''}`,
    `trigger   ${s.triggerId}`,
    `started   ${iso(s.startedAt)}  ${s.endedAt === null ? `running for ${formatMs(now - s.startedAt)}` : `took ${formatMs(s.durationMs)}`}`,
  ];
  if (s.failedStep) {
    const started = s.compensationStartedAt === null ? '' : `, compensation started +${formatMs(s.compensationStartedAt - s.startedAt)}`;
    lines.push(`failure   ${s.failedStep}: ${s.failure}${started}`);
  }
  const parked = record.events.filter((e) => e.type === 'SagaParked');
  for (const p of parked) if (p.type === 'SagaParked') lines.push(`parked    ${p.step}: ${p.reason} at +${formatMs(p.at - s.startedAt)}`);
  lines.push(`input     ${JSON.stringify(s.input)}`, '');
  const rows = attemptRows(record.events).map((a) => [`+${formatMs(a.dispatchedAt - s.startedAt)}`, a.step, a.kind, `#${a.attempt}`, a.outcome, a.eventType ?? '-', formatMs(a.durationMs)]);
  lines.push(table(['AT', 'STEP', 'KIND', 'ATTEMPT', 'OUTCOME', 'REPLY', 'TOOK'], rows));
  return lines.join('\n');
}
