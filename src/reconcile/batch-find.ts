import type { ClickHouseClient } from '@clickhouse/client';
import type { ReconciliationConfig, ReconSideConfig } from '../core/config.ts';
import { differingSegments, firstLevel, nextStep, type Level, type SegmentStat } from './logic/bisection.ts';
import { diffKey } from './logic/discrepancy.ts';
import { fieldHash, type FieldHash } from './logic/hash-plan.ts';
import { keyText } from './logic/keys.ts';
import type { Discrepancy, ReconRecord } from './logic/types.ts';
import { batchWindow, ownerPeriod } from './logic/window.ts';
import { describeSource, fetchQuery, hashParams, levelQuery, type SqlSource } from './batch-sql.ts';
import { BASE_SETTINGS, scanQueryId } from '../clickhouse/client.ts';

export type BatchStats = {
  rowsA: number;
  rowsB: number;
  levels: number;
  segmentsCompared: number;
  segmentsDiffering: number;
  rowsFetched: number;
  durationMs: number;
};

export type BatchFindings = { discrepancies: Discrepancy[]; stats: BatchStats };

type Row = Record<string, string | null>;

async function rowsOf<T>(client: ClickHouseClient, query: string, params: Record<string, unknown>): Promise<T[]> {
  // every setting we rely on goes with every call: chDB keeps settings of earlier calls;
  // a batch's reads follow the size of its window, so they take the scan lane (client.ts)
  const result = await client.query({ query, query_params: params, format: 'JSONEachRow', clickhouse_settings: BASE_SETTINGS, query_id: scanQueryId() });
  return result.json<T>();
}

const toStat = (r: Row): SegmentStat => ({ segment: Number(r.segment), rows: Number(r.rows), sum: String(r.sum), xor: String(r.xor), dupKeys: Number(r.dup_keys) });

const toRecord = (r: Row, keys: number, fields: readonly string[]): ReconRecord => ({
  key: Array.from({ length: keys }, (_, i) => r[`k${i}`] ?? ''),
  fields: Object.fromEntries(fields.map((f, i) => [f, r[`f${i}`] ?? null])),
  time: Number(r.t),
});

/**
 * The exact discrepancy list of one period, by checksum bisection (see
 * logic/bisection.ts): both systems are reduced to per-segment checksums inside
 * ClickHouse, only differing segments are split further, and only the rows of the
 * last differing segments cross into Node, where diffKey decides exactly.
 */
export async function findBatchDiscrepancies(client: ClickHouseClient, db: string, recon: ReconciliationConfig, period: string): Promise<BatchFindings> {
  const started = performance.now();
  const compared = Object.keys(recon.fields);
  const base = (side: ReconSideConfig) => ({ side, db, keys: recon.key, fields: compared });
  const typesA = await describeSource(client, base(recon.a));
  const typesB = await describeSource(client, base(recon.b));
  const nativeKeys = recon.key.every((k) => {
    const [x, y] = [typesA.get(k)!, typesB.get(k)!];
    return x.base === y.base && !x.nullable && !y.nullable;
  });
  const sources: { a: SqlSource; b: SqlSource } = { a: { ...base(recon.a), nativeKeys }, b: { ...base(recon.b), nativeKeys } };
  const plans: FieldHash[] = compared.map((field) => fieldHash(field, recon.fields[field]!, typesA.get(field)!, typesB.get(field)!));
  const window = batchWindow(period, recon.timeZone, recon.lag);
  const params = { ...hashParams(plans), from: window.from, to: window.to };
  const stats: BatchStats = { rowsA: 0, rowsB: 0, levels: 0, segmentsCompared: 0, segmentsDiffering: 0, rowsFetched: 0, durationMs: 0 };

  let level: Level = firstLevel(recon.batch);
  let parentBits = 0;
  for (;;) {
    const levelParams = { ...params, ...(level.segments === 'all' ? {} : { parents: level.segments }) };
    const [a, b] = [
      (await rowsOf<Row>(client, levelQuery(sources.a, plans, typesA, level, parentBits), levelParams)).map(toStat),
      (await rowsOf<Row>(client, levelQuery(sources.b, plans, typesB, level, parentBits), levelParams)).map(toStat),
    ];
    if (stats.levels === 0) {
      stats.rowsA = a.reduce((n, s) => n + s.rows, 0);
      stats.rowsB = b.reduce((n, s) => n + s.rows, 0);
    }
    stats.levels++;
    const union = new Set([...a.map((s) => s.segment), ...b.map((s) => s.segment)]).size;
    stats.segmentsCompared += union;
    const differing = differingSegments(a, b);
    stats.segmentsDiffering = differing.length;
    const step = nextStep(level, union, differing, recon.batch);
    if (step.kind === 'done') break;
    if (step.kind === 'descend') {
      parentBits = level.bits;
      level = step.level;
      continue;
    }
    const discrepancies: Discrepancy[] = [];
    for (const page of step.pages) discrepancies.push(...(await diffPage(client, recon, sources, step.bits, page, params, period, stats)));
    stats.durationMs = Math.round(performance.now() - started);
    return { discrepancies, stats };
  }
  stats.durationMs = Math.round(performance.now() - started);
  return { discrepancies: [], stats };
}

async function diffPage(
  client: ClickHouseClient,
  recon: ReconciliationConfig,
  sources: { a: SqlSource; b: SqlSource },
  bits: number,
  segments: number[],
  params: Record<string, unknown>,
  period: string,
  stats: BatchStats,
): Promise<Discrepancy[]> {
  const fields = sources.a.fields;
  const pageParams = { from: params.from, to: params.to, segments };
  const a = (await rowsOf<Row>(client, fetchQuery(sources.a, bits), pageParams)).map((r) => toRecord(r, recon.key.length, fields));
  const b = (await rowsOf<Row>(client, fetchQuery(sources.b, bits), pageParams)).map((r) => toRecord(r, recon.key.length, fields));
  stats.rowsFetched += a.length + b.length;
  const byKey = new Map<string, { key: string[]; a: ReconRecord[]; b: ReconRecord[] }>();
  const group = (record: ReconRecord) => {
    const text = keyText(record.key);
    let entry = byKey.get(text);
    if (!entry) byKey.set(text, (entry = { key: record.key, a: [], b: [] }));
    return entry;
  };
  a.forEach((r) => group(r).a.push(r));
  b.forEach((r) => group(r).b.push(r));
  const out: Discrepancy[] = [];
  for (const { key, a: as, b: bs } of byKey.values()) {
    if (ownerPeriod(as, bs, recon.timeZone) !== period) continue;
    out.push(...diffKey(recon, period, key, as, bs));
  }
  return out;
}
