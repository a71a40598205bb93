import type { ClickHouseClient } from '@clickhouse/client';
import type { ReconSideConfig } from '../core/config.ts';
import { columnType, isNumericType, type ColumnType, type FieldHash } from './logic/hash-plan.ts';
import type { Level } from './logic/bisection.ts';

/**
 * SQL over one system's ClickHouse source. Identifiers come from the validated config
 * (plain column names, quoted here); every value — window, segments, bucket widths —
 * travels as a query parameter.
 */
export type SqlSource = {
  side: ReconSideConfig;
  db: string;
  keys: readonly string[];
  fields: readonly string[];
  /** the key columns have the same non-nullable type on both systems, so they hash as they are (cheaper than as text) */
  nativeKeys: boolean;
};

const quote = (name: string): string => `\`${name}\``;
/** The shape src/core/decimal.ts accepts, untrimmed (text with spaces hashes as text and is compared exactly). */
const DECIMAL_TEXT = '^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$';

const from = ({ side, db }: Pick<SqlSource, 'side' | 'db'>): string => (side.table !== undefined ? (side.table.includes('.') ? side.table : `${db}.${side.table}`) : `(${side.query})`);
const column = ({ side }: Pick<SqlSource, 'side'>, logical: string): string => quote(side.fields[logical] ?? logical);
const timeColumn = ({ side }: SqlSource): string => quote(side.time ?? 'occurred_at');

const WINDOW = `fromUnixTimestamp64Milli({from:Int64}, 'UTC') <= __t AND __t < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`;
const inWindow = (source: SqlSource): string => WINDOW.replaceAll('__t', timeColumn(source));

/** Keys match as text; equal text is an equal value within one type, so same-typed keys skip the conversion. */
const keyHash = (source: SqlSource): string =>
  `cityHash64(${source.keys.map((k) => (source.nativeKeys ? column(source, k) : `ifNull(toString(${column(source, k)}), '')`)).join(', ')})`;

/** ClickHouse types of the logical fields (keys and compared), as the source yields them. */
export async function describeSource(client: ClickHouseClient, source: Omit<SqlSource, 'nativeKeys'>): Promise<Map<string, ColumnType>> {
  const select = [...source.keys, ...source.fields].map((f) => `${column(source, f)} AS ${quote(f)}`).join(', ');
  const result = await client.query({ query: `DESCRIBE (SELECT ${select} FROM ${from(source)} LIMIT 0)`, format: 'JSONEachRow' });
  const rows = await result.json<{ name: string; type: string }>();
  return new Map(rows.map((r) => [r.name, columnType(r.type)]));
}

/**
 * The hash arguments of one field; both systems yield the same argument shape for any
 * value, and never a NULL (cityHash64 of a NULL is NULL, and sum() would skip the row).
 */
function fieldHashArgs(source: SqlSource, plan: FieldHash, type: ColumnType, i: number): string {
  const c = `assumeNotNull(${column(source, plan.field)})`;
  const isNull = `isNull(${column(source, plan.field)})`;
  // text is bucketed only when it is the decimal text valuesAgree reads ("0x10" parses here, not there)
  const float = isNumericType(type.base) ? `toFloat64(${c})` : `if(match(toString(${c}), '${DECIMAL_TEXT}'), ifNull(toFloat64OrNull(toString(${c})), nan), nan)`;
  switch (plan.kind) {
    case 'native':
      return `${isNull}, ${c}`;
    case 'text':
      return `${isNull}, toString(${c})`;
    case 'decimal':
      return `${isNull}, toDecimal256(${c}, ${plan.scale})`;
    case 'absolute': {
      const ok = `(isFinite(${float}) AND abs(${float}) < {limit${i}:Float64})`;
      return `${isNull}, ${ok}, if(${ok}, floor(${float} / {width${i}:Float64}), 0), if(${ok}, '', toString(${c}))`;
    }
    case 'percentage': {
      const ok = `(isFinite(${float}) AND abs(${float}) >= 1e-200 AND abs(${float}) < 1e200)`;
      return `${isNull}, ${ok}, if(${ok}, sign(${float}), 0), if(${ok}, floor(log(abs(${float})) / {width${i}:Float64}), 0), if(${ok}, '', toString(${c}))`;
    }
  }
}

export function hashParams(plans: readonly FieldHash[]): Record<string, number> {
  const params: Record<string, number> = {};
  plans.forEach((plan, i) => {
    if (plan.kind === 'absolute') Object.assign(params, { [`width${i}`]: plan.width, [`limit${i}`]: plan.limit });
    if (plan.kind === 'percentage') params[`width${i}`] = plan.width;
  });
  return params;
}

/** (kh, rh) per row of the window: key hash and normalised-row hash. */
function hashedRows(source: SqlSource, plans: readonly FieldHash[], types: Map<string, ColumnType>): string {
  const args = plans.map((plan, i) => fieldHashArgs(source, plan, types.get(plan.field) ?? { base: 'String', nullable: true }, i));
  return `SELECT ${keyHash(source)} AS kh, cityHash64(${['kh', ...args].join(', ')}) AS rh FROM ${from(source)} WHERE ${inWindow(source)}`;
}

const segmentOf = (bits: number): string => `bitShiftRight(kh, ${64 - bits})`;

/**
 * Checksums of one level: per segment the row count, wrapping sum and xor of row
 * hashes, and how many keys occur more than once. Rows are first folded per key so the
 * duplicate count is exact; a deeper level reads only its parents' rows.
 */
export function levelQuery(source: SqlSource, plans: readonly FieldHash[], types: Map<string, ColumnType>, level: Level, parentBits: number): string {
  const parents = level.segments === 'all' ? '' : `WHERE ${segmentOf(parentBits)} IN {parents:Array(UInt64)}`;
  return `SELECT ${segmentOf(level.bits)} AS segment, sum(n) AS rows, sum(h) AS sum, groupBitXor(x) AS xor, countIf(n > 1) AS dup_keys
    FROM (SELECT kh, count() AS n, sum(rh) AS h, groupBitXor(rh) AS x FROM (${hashedRows(source, plans, types)}) ${parents} GROUP BY kh)
    GROUP BY segment`;
}

/** The rows of some segments, values as the system's text (NULL kept), time in epoch ms. */
export function fetchQuery(source: SqlSource, bits: number): string {
  const keys = source.keys.map((k, i) => `ifNull(toString(${column(source, k)}), '') AS k${i}`);
  const fields = source.fields.map((f, i) => `toString(${column(source, f)}) AS f${i}`);
  return `SELECT ${[...keys, ...fields, `toUnixTimestamp64Milli(toDateTime64(${timeColumn(source)}, 3, 'UTC')) AS t`].join(', ')}
    FROM ${from(source)}
    WHERE ${inWindow(source)} AND bitShiftRight(${keyHash(source)}, ${64 - bits}) IN {segments:Array(UInt64)}`;
}
