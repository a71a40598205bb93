import type { ClickHouseClient } from '@clickhouse/client';
import type { GroupState } from '../../processors/logic/day-state.ts';

/** The day's marker row in daily_state: no group key is spelled so (keys are '' or a JSON array). */
export const MARKER_GROUP = '#';

export type StateRow = {
  generation: string;
  groupKey: string;
  hwm: number;
  epoch: number;
  rules: string;
  /** the uniq key of the group (daily_uniq), kept beside its state */
  uniqKey: string;
  state: GroupState;
};

type Stored = {
  generation: string;
  group_key: string;
  uniq_key: string;
  hwm: string;
  epoch: string;
  rules: string;
  events: string;
  known_at: string;
  vals: Record<string, string>;
  ns: Record<string, string>;
};

const fromStored = (row: Stored): StateRow => {
  const parts: GroupState['parts'] = {};
  for (const [name, v] of Object.entries(row.vals)) parts[name] = { v, n: Number(row.ns[name] ?? 0) };
  return {
    generation: row.generation,
    groupKey: row.group_key,
    hwm: Number(row.hwm),
    epoch: Number(row.epoch),
    rules: row.rules,
    uniqKey: row.uniq_key,
    state: { events: Number(row.events), knownAt: Number(row.known_at), parts },
  };
};

/** Every generation's latest rows of one report day (markers included). */
export async function readDayStates(client: ClickHouseClient, db: string, report: string, day: string): Promise<StateRow[]> {
  const result = await client.query({
    query: `SELECT generation, group_key, uniq_key, hwm, epoch, rules, events, known_at, mapApply((k, v) -> (k, toString(v)), vals) AS vals, ns
      FROM ${db}.daily_state FINAL WHERE report = {report:String} AND day = {day:Date}`,
    query_params: { report, day },
    format: 'JSONEachRow',
  });
  return (await result.json<Stored>()).map(fromStored);
}

/** Writes group rows and the day's marker in one insert (one part: all or nothing). */
export async function writeDayStates(client: ClickHouseClient, db: string, report: string, day: string, rows: StateRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({
    table: `${db}.daily_state`,
    values: rows.map((r) => ({
      report,
      day,
      generation: r.generation,
      group_key: r.groupKey,
      uniq_key: r.uniqKey,
      hwm: r.hwm,
      epoch: r.epoch,
      rules: r.rules,
      events: r.state.events,
      known_at: r.state.knownAt,
      vals: Object.fromEntries(Object.entries(r.state.parts).map(([name, p]) => [name, p.v])),
      ns: Object.fromEntries(Object.entries(r.state.parts).map(([name, p]) => [name, p.n])),
    })),
    format: 'JSONEachRow',
  });
}
