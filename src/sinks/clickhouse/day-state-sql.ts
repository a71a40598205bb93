import type { ClickHouseClient, ClickHouseSettings } from '@clickhouse/client';
import { scanQueryId } from '../../clickhouse/client.ts';
import type { ReportConfig } from '../../core/config.ts';
import { dayEndMs, dayStartMs } from '../../core/business-day.ts';
import type { GroupState, MeasurePart } from '../../processors/logic/day-state.ts';
import { groupKeyOf, groupSql, type Row } from './daily-figures.ts';

/**
 * What a revision reads of one report day. `hwm`: the EVENTS ack floor when it started,
 * so every row at or below it is stored; rows above it (still in flight) wait for the
 * next revision. `base`: the high-water mark of the state it adds to (null: none, the
 * whole day is read). Rows of another stream epoch, or written around the pipeline
 * (epoch 0), count as older than any mark.
 */
export type ReadRange = { epoch: number; hwm: number; base: number | null };

/** A group's share of what was read: its state (or, from a delta, what is new to it) and the values its uniq measures saw. */
export type GroupRead = { groupKey: string; uniqKey: string; state: GroupState; uniqValues: Record<string, string[]> };

const DAY = `type IN {types:Array(String)} AND occurred_at >= fromUnixTimestamp64Milli({start:Int64}, 'UTC') AND occurred_at < fromUnixTimestamp64Milli({end:Int64}, 'UTC')`;
const INCLUDED = '(stream_epoch != {epoch:UInt64} OR stream_seq <= {hwm:UInt64})';
const EARLIER = '(stream_epoch != {epoch:UInt64} OR stream_seq <= {base:UInt64})';
const KEY = 'type, occurred_at, source, id';

const COPY = 'tuple(key, data, nums, received_at, stream_epoch, stream_seq)';
const COLUMNS = 'type, occurred_at, source, id, key, data, nums, received_at';
const IN_FLIGHT = '(stream_epoch = {epoch:UInt64} AND stream_seq > {hwm:UInt64})';
const NEW = '(stream_epoch = {epoch:UInt64} AND stream_seq > {base:UInt64} AND stream_seq <= {hwm:UInt64})';

/** The identities of the day with a copy stored past the mark: at most what EVENTS holds unacked; the arrival index skips the granules below the mark. */
const flyingSql = (db: string): string => `SELECT ${KEY} FROM ${db}.events WHERE ${DAY} AND ${IN_FLIGHT}`;

/**
 * One row per identity `only` selects (a condition): the copy `events FINAL` would keep
 * (highest `keep`; one tuple, so every column comes from the same row) among those at
 * or below the mark, else among all (a merge may have kept only a copy still in flight).
 * Grouping by identity costs 2–4 µs a row in chDB (FINAL: about 0.5), so it is used
 * only for identities with a copy in flight.
 */
const winners = (db: string, only: string): string => `SELECT type, occurred_at, source, id,
    tupleElement(w, 1) AS key, tupleElement(w, 2) AS data, tupleElement(w, 3) AS nums, tupleElement(w, 4) AS received_at,
    tupleElement(w, 5) AS w_epoch, tupleElement(w, 6) AS w_seq
  FROM (
    SELECT type, occurred_at, source, id, if(countIf(${INCLUDED}) > 0, argMaxIf(${COPY}, keep, ${INCLUDED}), argMax(${COPY}, keep)) AS w
    FROM ${db}.events WHERE ${DAY} AND ${only}
    GROUP BY ${KEY})`;

/**
 * The whole day up to `hwm`: every identity with a copy arrived at or below it, as the
 * copy kept. An identity with no copy in flight is read through `FINAL` with the mark as
 * PREWHERE, which ClickHouse applies before FINAL folds copies (so a copy stored during
 * the read never replaces one below the mark): in sort order, without grouping, as
 * replays read before daily states. Identities with a copy in flight go through
 * winners(); one whose kept copy is in flight counts only if a copy of it arrived at or
 * below the mark (event_arrivals, where merges of `events` erase none).
 */
function wholeDaySql(db: string): string {
  const flying = `(${KEY}) IN (${flyingSql(db)})`;
  return `SELECT ${COLUMNS} FROM ${db}.events FINAL PREWHERE ${INCLUDED} WHERE ${DAY} AND NOT ${flying}
  UNION ALL
  SELECT ${COLUMNS} FROM (${winners(db, flying)})
  WHERE w_epoch != {epoch:UInt64} OR w_seq <= {hwm:UInt64} OR (${KEY}) IN (SELECT ${KEY} FROM ${db}.event_arrivals WHERE ${DAY} AND ${INCLUDED} AND ${flying})`;
}

/** Identities with a copy that arrived past `base` and up to `hwm` (arrival index: only granules holding new arrivals are read). */
const newKeysSql = (db: string): string => `SELECT ${KEY} FROM ${db}.event_arrivals WHERE ${DAY} AND ${NEW}`;
/**
 * Of those, the ones a copy of which arrived at or below `base` too: already counted,
 * looked up by key. The key set narrows the primary index only where the day's keys are
 * not all near the new ones (today's events all fall within minutes of each other, so
 * there it narrows nothing and the lookup reads the whole day): the `PREWHERE` first reads
 * only `occurred_at` (one compressed number a row) and tests it against the new
 * identities' times, and only the few rows sharing such a time are read whole and tested
 * by key. Measured on a 500,000-event day, a delta of 20,000: 117 → 46 ms of CPU (the
 * tuple of four columns, one a string, hashed for every row of the day was most of it).
 */
const seenKeysSql = (db: string): string => `SELECT ${KEY} FROM ${db}.event_arrivals
  PREWHERE occurred_at IN (SELECT occurred_at FROM ${db}.event_arrivals WHERE ${DAY} AND ${NEW})
  WHERE ${DAY} AND ${EARLIER} AND (${KEY}) IN (${newKeysSql(db)})`;

/**
 * A delta: the identities new since `base` (a copy arrived past it and up to `hwm`, none
 * at or below it), each as the copy kept. Every copy of such an identity is stored past
 * `base` in this epoch, so they are read by the arrival index, not looked up by key.
 * An identity with no copy in flight is read through `FINAL` with the new range as
 * `PREWHERE` (applied before `FINAL` folds copies, as in wholeDaySql, so the granules the
 * arrival index skips hold nothing it would keep: `use_skip_indexes_if_final` may skip
 * them): in sort order, without the sort that `LIMIT 1 BY` needs. Identities with a copy
 * in flight (at most what EVENTS holds unacked) take the copy with the highest `keep`
 * among those at or below the mark, else among all (a merge may have kept only a copy
 * still in flight, which counts if a copy arrived in the range: `event_arrivals`, which
 * no merge folds). Measured on a 500,000-event day, a delta of 20,000 read and summed per
 * group: 1.7-2.0 us an event with `LIMIT 1 BY` over all and a set of every new identity,
 * 0.8-1.3 this way. `seen`: whether some new identity was counted before (they are then
 * looked up and left out).
 */
const freshSql = (db: string, seen: boolean): string => {
  const flying = `(${KEY}) IN (${flyingSql(db)})`;
  const unseen = seen ? ` AND (${KEY}) NOT IN (${seenKeysSql(db)})` : '';
  return `SELECT ${COLUMNS} FROM ${db}.events FINAL PREWHERE ${NEW} WHERE ${DAY} AND NOT ${flying}${unseen}
  UNION ALL
  SELECT ${COLUMNS} FROM (
    SELECT ${COLUMNS}, stream_seq FROM ${db}.events WHERE ${DAY} AND stream_epoch = {epoch:UInt64} AND stream_seq > {base:UInt64} AND ${flying}
    ORDER BY ${KEY}, ${INCLUDED} DESC, keep DESC LIMIT 1 BY ${KEY})
  WHERE (stream_seq <= {hwm:UInt64} OR (${KEY}) IN (SELECT ${KEY} FROM ${db}.event_arrivals WHERE ${DAY} AND ${NEW} AND ${flying}))${unseen}`;
};

/** The delta's `FINAL` may skip granules by the arrival index (see freshSql): it keeps no row outside its `PREWHERE` range anyway. */
const DELTA_SETTINGS = { use_skip_indexes_if_final: 1, use_skip_indexes_if_final_exact_mode: 0 } as const;

/**
 * How many new identities were counted before, and of those how many came again from a
 * lower INGEST sequence than every earlier copy: a different message that may have
 * replaced the counted content (`conflicts`: the caller recomputes the day); a copy of
 * the same message is the same event and adds nothing. The grouping runs only when a
 * new identity was seen before, which is rare; like seenKeysSql it reads a row of the
 * day whole only when its `occurred_at` is that of an identity counted before.
 */
const seenSql = (db: string): string => `SELECT count() AS n FROM (${seenKeysSql(db)})`;
const conflictSql = (db: string): string => `SELECT count() AS n FROM (
    SELECT ${KEY}, minIf(seq, ${EARLIER}) AS seq_earlier, minIf(seq, NOT ${EARLIER}) AS seq_new
    FROM ${db}.event_arrivals
    PREWHERE occurred_at IN (SELECT occurred_at FROM (${seenKeysSql(db)}))
    WHERE ${DAY} AND ${INCLUDED} AND (${KEY}) IN (${seenKeysSql(db)})
    GROUP BY ${KEY})
  WHERE seq_new < seq_earlier`;

/** The measures' parts (day-state.ts); a delta's uniq measures list their values instead of counting them. */
function partsSql(report: ReportConfig, delta: boolean): { select: string[]; params: Record<string, unknown> } {
  const select: string[] = [];
  const params: Record<string, unknown> = {};
  Object.values(report.measures).forEach((measure, i) => {
    const f = `{m${i}:String}`;
    if (measure.field !== undefined) params[`m${i}`] = measure.field;
    const present = `JSONExtractRaw(data, ${f}) NOT IN ('', 'null')`;
    const typed = `mapContains(nums, ${f})`;
    switch (measure.fn) {
      case 'count':
        select.push(measure.field === undefined ? `toString(count()) AS m${i}_v` : `toString(countIf(${present})) AS m${i}_v`);
        break;
      case 'sum':
      case 'avg':
        select.push(`toString(sumIf(nums[${f}], ${typed})) AS m${i}_v`, `countIf(${typed}) AS m${i}_n`);
        break;
      case 'min':
      case 'max':
        select.push(`toString(${measure.fn}If(nums[${f}], ${typed})) AS m${i}_v`, `countIf(${typed}) AS m${i}_n`);
        break;
      case 'uniq':
        select.push(delta ? `groupUniqArrayIf(JSONExtractRaw(data, ${f}), ${present}) AS m${i}_u` : `toString(uniqExactIf(JSONExtractRaw(data, ${f}), ${present})) AS m${i}_v`);
        break;
    }
  });
  return { select, params };
}

/** The group as SQL spells it: the key of daily_uniq, computed the same way on every path. */
const uniqKeySql = (report: ReportConfig): string =>
  report.groupBy.length === 0 ? `''` : `toJSONString(tuple(${report.groupBy.map((_, i) => `g${i}`).join(', ')}))`;

const dayParams = (report: ReportConfig, day: string, range: ReadRange) => ({
  types: report.types,
  start: dayStartMs(day, report.timeZone),
  end: dayEndMs(day, report.timeZone),
  epoch: range.epoch,
  hwm: range.hwm,
  base: range.base ?? 0,
});

/** `scan`: the read follows the size of the day, so it takes the scan lane (client.ts) and never holds up short calls. */
async function rows(client: ClickHouseClient, query: string, params: Record<string, unknown>, scan = false, settings: ClickHouseSettings = {}): Promise<Row[]> {
  const result = await client.query({ query, query_params: params, format: 'JSONEachRow', clickhouse_settings: { optimize_aggregation_in_order: 1, ...settings }, ...(scan ? { query_id: scanQueryId() } : {}) });
  return result.json<Row>();
}

function groupRead(report: ReportConfig, row: Row): GroupRead {
  const parts: Record<string, MeasurePart> = {};
  const uniqValues: Record<string, string[]> = {};
  Object.entries(report.measures).forEach(([name, measure], i) => {
    const listed = row[`m${i}_u`] as unknown as string[] | undefined;
    if (measure.fn === 'uniq' && listed) uniqValues[name] = listed;
    parts[name] = { v: listed ? '0' : String(row[`m${i}_v`]), n: Number(row[`m${i}_n`] ?? 0) };
  });
  return {
    groupKey: groupKeyOf(report, row),
    uniqKey: String(row.uniq_key),
    state: { events: Number(row.events), knownAt: Number(row.known_at), parts },
    uniqValues,
  };
}

/**
 * Per group, the figure's parts over what `range` reads: the whole day up to `hwm`
 * (base null), or only the identities new since `base`. Null when a delta holds a
 * conflicting copy (see freshSql).
 */
export async function readGroups(client: ClickHouseClient, db: string, report: ReportConfig, day: string, range: ReadRange): Promise<GroupRead[] | null> {
  const delta = range.base !== null;
  const groups = groupSql(report);
  const parts = partsSql(report, delta);
  const params = { ...groups.params, ...parts.params, ...dayParams(report, day, range) };
  let seen = false;
  if (delta) {
    seen = Number((await rows(client, seenSql(db), params))[0]?.n ?? 0) > 0;
    if (seen && Number((await rows(client, conflictSql(db), params))[0]?.n ?? 0) > 0) return null;
  }
  const groupBy = report.groupBy.map((_, i) => `g${i}`);
  const query = `
    SELECT ${[...groups.select, `${uniqKeySql(report)} AS uniq_key`, 'count() AS events', 'toUnixTimestamp64Milli(max(received_at)) AS known_at', ...parts.select].join(', ')}
    FROM (${delta ? freshSql(db, seen) : wholeDaySql(db)})
    ${groupBy.length ? `GROUP BY ${groupBy.join(', ')}` : 'HAVING count() > 0'}`;
  return (await rows(client, query, params, !delta, delta ? DELTA_SETTINGS : {})).map((row) => groupRead(report, row));
}

/**
 * Whether the day holds at least `n` rows (copies included), as a short call whatever
 * the size of the day: first the primary index's estimate (`EXPLAIN ESTIMATE`: whole
 * granules, never fewer rows than there are, read from the index alone), and only when
 * that reaches `n` a look that reads at most about `n` rows of the key.
 */
export async function dayHoldsAtLeast(client: ClickHouseClient, db: string, report: ReportConfig, day: string, n: number): Promise<boolean> {
  const params = { types: report.types, start: dayStartMs(day, report.timeZone), end: dayEndMs(day, report.timeZone), n };
  const estimate = await rows(client, `SELECT sum(rows) AS n FROM (EXPLAIN ESTIMATE SELECT 1 FROM ${db}.events WHERE ${DAY})`, params);
  if (Number(estimate[0]?.n ?? 0) < n) return false;
  const found = await rows(client, `SELECT count() AS n FROM (SELECT 1 FROM ${db}.events WHERE ${DAY} LIMIT {n:UInt64})`, params);
  return Number(found[0]?.n ?? 0) >= n;
}

/**
 * How many rows of the day lie in granules the arrival index keeps for arrivals past
 * `base` (EXPLAIN ESTIMATE: from the indexes alone, no data read): what a delta's reads
 * go through. Few when what arrived since is stored apart (new parts, or a day whose
 * events arrive in event-time order); about the whole day once merges have mixed every
 * arrival into every granule (a day whose events all fall within the same minutes).
 */
export async function deltaScanRows(client: ClickHouseClient, db: string, report: ReportConfig, day: string, range: ReadRange): Promise<number> {
  const estimate = await rows(client, `SELECT sum(rows) AS n FROM (EXPLAIN ESTIMATE SELECT 1 FROM ${db}.events WHERE ${DAY} AND stream_epoch = {epoch:UInt64} AND stream_seq > {base:UInt64})`, dayParams(report, day, range));
  return Number(estimate[0]?.n ?? 0);
}

/** Stores the distinct values of the report's uniq measures over the whole day up to `range.hwm`, for a new generation. */
export async function storeDayUniqValues(client: ClickHouseClient, db: string, report: ReportConfig, day: string, range: ReadRange, generation: string): Promise<void> {
  const groups = groupSql(report);
  const params = { ...groups.params, ...dayParams(report, day, range) };
  const entries = Object.entries(report.measures);
  for (const [name, measure] of entries) {
    if (measure.fn !== 'uniq' || measure.field === undefined) continue;
    await client.command({
      query: `INSERT INTO ${db}.daily_uniq (report, day, generation, group_key, measure, value, arrival)
        SELECT {report:String}, {day:Date}, {generation:String}, uniq_key, {measure:String}, value, {hwm:UInt64} FROM (
          SELECT ${[...groups.select, `${uniqKeySql(report)} AS uniq_key`, 'JSONExtractRaw(data, {field:String}) AS value'].join(', ')}
          FROM (${wholeDaySql(db)}))
        WHERE value NOT IN ('', 'null')
        GROUP BY uniq_key, value`,
      query_params: { ...params, report: report.name, day, generation, measure: name, field: measure.field },
      clickhouse_settings: { optimize_aggregation_in_order: 1 },
      query_id: scanQueryId(),
    });
  }
}

export type UniqValue = { uniqKey: string; measure: string; value: string };

/** Which of `values` the generation already held at or below `base`. */
export async function knownUniqValues(client: ClickHouseClient, db: string, ref: { report: string; day: string; generation: string }, base: number, values: UniqValue[]): Promise<Set<string>> {
  if (values.length === 0) return new Set();
  const result = await client.query({
    query: `SELECT group_key, measure, value FROM ${db}.daily_uniq
      WHERE report = {report:String} AND day = {day:Date} AND generation = {generation:String}
        AND (group_key, measure, value) IN (SELECT arrayJoin(arrayZip({g:Array(String)}, {m:Array(String)}, {v:Array(String)})))
      GROUP BY group_key, measure, value
      HAVING min(arrival) <= {base:UInt64}`,
    query_params: { ...ref, base, g: values.map((u) => u.uniqKey), m: values.map((u) => u.measure), v: values.map((u) => u.value) },
    format: 'JSONEachRow',
  });
  const known = await result.json<{ group_key: string; measure: string; value: string }>();
  return new Set(known.map((k) => uniqId({ uniqKey: k.group_key, measure: k.measure, value: k.value })));
}

export const uniqId = (u: UniqValue): string => JSON.stringify([u.uniqKey, u.measure, u.value]);

/** Records `values` as taken in by the revision up to `arrival`; a value already there keeps its earliest arrival. */
export async function insertUniqValues(client: ClickHouseClient, db: string, ref: { report: string; day: string; generation: string }, arrival: number, values: UniqValue[]): Promise<void> {
  if (values.length === 0) return;
  await client.insert({
    table: `${db}.daily_uniq`,
    values: values.map((u) => ({ report: ref.report, day: ref.day, generation: ref.generation, group_key: u.uniqKey, measure: u.measure, value: u.value, arrival })),
    format: 'JSONEachRow',
    columns: ['report', 'day', 'generation', 'group_key', 'measure', 'value', 'arrival'],
  });
}
