import type { ClickHouseClient } from '@clickhouse/client';
import type { Config } from '../core/config.ts';
import { sleep } from '../core/time.ts';
import { onCluster } from './cluster-ddl.ts';

/**
 * The ClickHouse query surface of SPEC §4, as ordered, append-only migrations.
 * Every statement is idempotent (IF NOT EXISTS / OR REPLACE), so two processes
 * migrating at once, or a crash between a statement and its bookkeeping row, are
 * harmless: the next run repeats what was not recorded.
 */
export type Migration = {
  version: number;
  name: string;
  statements: (db: string) => string[];
  /** a step that needs to look at the database first; idempotent and safe to resume after a crash, as statements are */
  run?: (client: ClickHouseClient, db: string, options: MigrateOptions) => Promise<void>;
};

/** Exact to 20 decimal places with 56 integer digits: every amount a JSON string can reasonably carry. */
export const MONEY_TYPE = 'Decimal(76, 20)';

/** The migration adding realtime refusals and checkpoints: the next free number, one edit to renumber it. */
const REALTIME_EXACTLY_ONCE_VERSION = 9;
/** The migration adding the readable `group` column. */
const NAMED_GROUPS_VERSION = 11;

/** report_latest over report_revisions: recreated when the table gains a column, as the view's columns are fixed when it is made. */
const reportLatestView = (db: string): string => `CREATE OR REPLACE VIEW ${db}.report_latest AS
        SELECT * FROM ${db}.report_revisions FINAL
        ORDER BY report, day, group_key, revision DESC
        LIMIT 1 BY report, day, group_key`;

/** The migration adding incremental daily states. */
const INCREMENTAL_DAILY_VERSION = 12;

/** The migration adding the fencing of stalled realtime instances. */
const REALTIME_FENCES_VERSION = 13;

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'events',
    statements: (db) => [
      // Sorted by (type, occurred_at) so a report's day is a range scan; ReplacingMergeTree
      // collapses re-sent copies of an event, and `keep` makes the first stored copy win,
      // as JetStream's Nats-Msg-Id dedup does.
      `CREATE TABLE IF NOT EXISTS ${db}.events (
        id String,
        occurred_at DateTime64(3, 'UTC'),
        received_at DateTime64(3, 'UTC'),
        delay_ms Int64,
        source LowCardinality(String),
        type LowCardinality(String),
        key Nullable(String),
        data String,
        nums Map(LowCardinality(String), ${MONEY_TYPE}),
        seq UInt64,
        keep UInt64 MATERIALIZED 18446744073709551615 - seq
      ) ENGINE = ReplacingMergeTree(keep)
      PARTITION BY toYYYYMM(occurred_at)
      ORDER BY (type, occurred_at, id)`,
    ],
  },
  {
    version: 2,
    name: 'report revisions',
    statements: (db) => [
      `CREATE TABLE IF NOT EXISTS ${db}.report_revisions (
        report LowCardinality(String),
        day Date,
        group_key String,
        revision UInt32,
        status Enum8('preliminary' = 1, 'final' = 2, 'amended' = 3),
        reason LowCardinality(String),
        computed_at DateTime64(3, 'UTC'),
        known_at DateTime64(3, 'UTC'),
        events UInt64,
        late_events UInt64,
        measures Map(String, ${MONEY_TYPE})
      ) ENGINE = ReplacingMergeTree
      ORDER BY (report, day, group_key, revision)`,
      reportLatestView(db),
    ],
  },
  {
    version: 3,
    name: 'realtime windows',
    statements: (db) => [
      // One row per (window, group, processor instance): instances sharing the durable
      // consumer each see part of the stream. `parts` and `uniq_values` carry what an
      // exact merge of avg and uniq across instances needs (see realtime_latest).
      `CREATE TABLE IF NOT EXISTS ${db}.realtime_windows (
        report LowCardinality(String),
        size_ms UInt64,
        window_start DateTime64(3, 'UTC'),
        window_end DateTime64(3, 'UTC'),
        group_key String,
        instance String,
        emission UInt32,
        timing Enum8('early' = 1, 'on_time' = 2, 'late' = 3),
        final UInt8,
        events UInt64,
        measures Map(String, ${MONEY_TYPE}),
        parts Map(String, ${MONEY_TYPE}),
        uniq_values Map(String, Array(String)),
        emitted_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(emission)
      ORDER BY (report, size_ms, window_start, group_key, instance)
      TTL toDateTime(window_end) + INTERVAL 30 DAY`,
    ],
  },
  {
    version: 4,
    name: 'alerts and delay statistics',
    statements: (db) => [
      // Every alert on ALERTS, the monitor's and the processor's; a re-delivered copy
      // collapses into the first, as the id is deterministic.
      `CREATE TABLE IF NOT EXISTS ${db}.alerts (
        id String,
        kind LowCardinality(String),
        source String,
        sla String,
        subject String,
        at DateTime64(3, 'UTC'),
        raised_at DateTime64(3, 'UTC'),
        stored_at DateTime64(3, 'UTC'),
        seq UInt64,
        payload String
      ) ENGINE = ReplacingMergeTree
      ORDER BY (kind, source, id)`,
      // Partial delay histograms per (source, slice of receivedAt) from each monitor
      // instance; rows of one slice add up (sumMap) to the slice's histogram.
      `CREATE TABLE IF NOT EXISTS ${db}.delay_slices (
        source LowCardinality(String),
        slice_start DateTime64(3, 'UTC'),
        instance String,
        events UInt64,
        late UInt64,
        worst_ms Int64,
        bins Map(UInt16, UInt64)
      ) ENGINE = MergeTree
      ORDER BY (source, slice_start)
      TTL toDateTime(slice_start) + INTERVAL 2 DAY`,
      `CREATE TABLE IF NOT EXISTS ${db}.delay_stats (
        computed_at DateTime64(3, 'UTC'),
        source LowCardinality(String),
        window_label LowCardinality(String),
        window_ms UInt64,
        events UInt64,
        late UInt64,
        late_share Float64,
        p50_ms Float64,
        p95_ms Float64,
        p99_ms Float64,
        worst_ms Int64
      ) ENGINE = ReplacingMergeTree
      ORDER BY (source, window_label, computed_at)
      TTL toDateTime(computed_at) + INTERVAL 30 DAY`,
    ],
  },
  {
    version: 5,
    name: 'sagas',
    statements: (db) => [
      // Written from the saga log by the projector: every revision rewrites the saga's
      // rows with a higher version, so FINAL (or argMax) shows the latest.
      `CREATE TABLE IF NOT EXISTS ${db}.sagas (
        saga_id String,
        name LowCardinality(String),
        status LowCardinality(String),
        trigger_id String,
        input String,
        current_step String,
        failed_step String,
        failure String,
        parks UInt32,
        started_at DateTime64(3, 'UTC'),
        updated_at DateTime64(3, 'UTC'),
        ended_at Nullable(DateTime64(3, 'UTC')),
        duration_ms Nullable(UInt64),
        compensation_started_at Nullable(DateTime64(3, 'UTC')),
        version UInt32
      ) ENGINE = ReplacingMergeTree(version)
      ORDER BY saga_id`,
      `CREATE TABLE IF NOT EXISTS ${db}.saga_steps (
        saga_id String,
        name LowCardinality(String),
        step LowCardinality(String),
        kind Enum8('do' = 1, 'undo' = 2),
        attempt UInt32,
        seq UInt32,
        command_id String,
        subject LowCardinality(String),
        outcome Enum8('running' = 1, 'succeeded' = 2, 'failed' = 3, 'timed_out' = 4, 'abandoned' = 5),
        event_type String,
        dispatched_at DateTime64(3, 'UTC'),
        ended_at Nullable(DateTime64(3, 'UTC')),
        duration_ms Nullable(UInt64),
        version UInt32
      ) ENGINE = ReplacingMergeTree(version)
      ORDER BY (saga_id, step, kind, attempt)`,
    ],
  },
  {
    version: 6,
    name: 'reconciliation history',
    statements: (db) => [
      // One row per run; the `running` row is replaced by the finished one (higher version).
      `CREATE TABLE IF NOT EXISTS ${db}.recon_runs (
        run_id String,
        name LowCardinality(String),
        period Date,
        mode Enum8('batch' = 1, 'stream' = 2),
        status Enum8('running' = 1, 'succeeded' = 2, 'failed' = 3),
        started_at DateTime64(3, 'UTC'),
        finished_at DateTime64(3, 'UTC'),
        duration_ms UInt64,
        rows_a UInt64,
        rows_b UInt64,
        levels UInt32,
        segments_compared UInt64,
        segments_differing UInt64,
        rows_fetched UInt64,
        missing_in_a UInt64,
        missing_in_b UInt64,
        mismatches UInt64,
        duplicates UInt64,
        new_discrepancies UInt64,
        healed UInt64,
        queued UInt64,
        alerted UInt8,
        error String,
        version UInt8
      ) ENGINE = ReplacingMergeTree(version)
      ORDER BY (name, period, run_id)`,
      // One row per finding (deterministic id). A status change is a new row with a higher
      // rank (open 1 < healed 2 < acknowledged 3), so a re-detected finding never reopens.
      `CREATE TABLE IF NOT EXISTS ${db}.recon_discrepancies (
        id String,
        name LowCardinality(String),
        period Date,
        type Enum8('MissingInA' = 1, 'MissingInB' = 2, 'Mismatch' = 3, 'Duplicate' = 4),
        side Enum8('' = 0, 'A' = 1, 'B' = 2),
        key String,
        count UInt32,
        diffs String,
        record_a String,
        record_b String,
        status Enum8('open' = 1, 'healed' = 2, 'acknowledged' = 3),
        action Enum8('none' = 0, 'publish' = 1, 'manual' = 2),
        mode Enum8('batch' = 1, 'stream' = 2),
        run_id String,
        detected_at DateTime64(3, 'UTC'),
        updated_at DateTime64(3, 'UTC'),
        note String,
        rank UInt8
      ) ENGINE = ReplacingMergeTree(rank)
      ORDER BY (name, period, id)`,
      // The audit trail: each action on a finding happens once, so a retried write collapses.
      `CREATE TABLE IF NOT EXISTS ${db}.recon_actions (
        name LowCardinality(String),
        period Date,
        discrepancy_id String,
        action Enum8('healed' = 1, 'queued' = 2, 'acknowledged' = 3, 'alerted' = 4),
        at DateTime64(3, 'UTC'),
        actor String,
        subject String,
        msg_id String,
        detail String
      ) ENGINE = ReplacingMergeTree
      ORDER BY (name, period, discrepancy_id, action)`,
    ],
  },
  {
    version: 7,
    name: 'events merged in bigger steps',
    statements: (db) => [
      // `events` takes a steady stream of 10k–20k-row inserts; merging them about twenty
      // at a time instead of five rewrites each row fewer times. Measured through chDB on
      // 1M bench rows: 22% less CPU for insert and merges, 7 active parts either way.
      `ALTER TABLE ${db}.events MODIFY SETTING merge_selector_base = 20`,
    ],
  },
  {
    version: 8,
    name: 'events keyed by (source, id)',
    statements: () => [],
    run: rekeyEvents,
  },
  {
    version: REALTIME_EXACTLY_ONCE_VERSION,
    name: 'realtime refusals and checkpoints',
    statements: (db) => [
      // late_refused: events a closed window refused (rows of instance '<id>/late', events 0).
      // folded and watermarks: on an instance's checkpoint row (size_ms 0, report ''), written
      // in the same insert as its window rows: the EVENTS sequences already in those rows, so
      // a redelivered one is not folded again, and how far each report is closed there.
      `ALTER TABLE ${db}.realtime_windows
        ADD COLUMN IF NOT EXISTS late_refused UInt64 DEFAULT 0,
        ADD COLUMN IF NOT EXISTS folded Array(Tuple(UInt64, UInt64)) DEFAULT [],
        ADD COLUMN IF NOT EXISTS watermarks Map(String, Int64) DEFAULT map()`,
    ],
  },
  {
    version: 10,
    name: 'webhook deliveries',
    statements: (db) => [
      // How each alert ended at each webhook: delivered, refused (a 4xx) or undelivered
      // (retryFor ran out). The last word per (alert, webhook) wins.
      `CREATE TABLE IF NOT EXISTS ${db}.alert_deliveries (
        alert_id String,
        webhook LowCardinality(String),
        url String,
        outcome LowCardinality(String),
        rounds UInt32,
        status UInt16,
        reason String,
        stored_at DateTime64(3, 'UTC'),
        at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(at)
      ORDER BY (alert_id, webhook)`,
    ],
  },
  {
    version: NAMED_GROUPS_VERSION,
    name: 'readable groups',
    statements: (db) => [
      // `group`: the groupBy fields with their values ({'source': 'store-9'}), so SQL reads
      // group['source'] = 'store-9' where group_key holds '["store-9"]'. group_key stays the identity.
      `ALTER TABLE ${db}.report_revisions ADD COLUMN IF NOT EXISTS group Map(String, String) AFTER group_key`,
      reportLatestView(db),
    ],
    run: nameExistingGroups,
  },
  {
    version: INCREMENTAL_DAILY_VERSION,
    name: 'incremental daily states',
    statements: (db) => [
      // Where each event came in: the EVENTS stream sequence of its message and the
      // stream's creation time (0 for rows written around the pipeline). A revision reads
      // only the rows past its day's high-water mark: the minmax index skips every granule
      // below it, so the cost follows what arrived, not the size of the day.
      `ALTER TABLE ${db}.events
        ADD COLUMN IF NOT EXISTS stream_epoch UInt64 DEFAULT 0,
        ADD COLUMN IF NOT EXISTS stream_seq UInt64 DEFAULT 0`,
      `ALTER TABLE ${db}.events ADD INDEX IF NOT EXISTS arrival (stream_epoch, stream_seq) TYPE minmax GRANULARITY 1`,
      // Every copy's arrival, kept when `events` folds copies together (a merge keeps one
      // row per identity, maybe the newest): whether an identity was already counted
      // below a mark is read here, where no merge erases it.
      `CREATE TABLE IF NOT EXISTS ${db}.event_arrivals (
        type LowCardinality(String),
        occurred_at DateTime64(3, 'UTC'),
        source LowCardinality(String),
        id String,
        seq UInt64,
        stream_epoch UInt64,
        stream_seq UInt64,
        INDEX arrival (stream_epoch, stream_seq) TYPE minmax GRANULARITY 1
      ) ENGINE = ReplacingMergeTree
      PARTITION BY toYYYYMM(occurred_at)
      ORDER BY (type, occurred_at, source, id, stream_epoch, stream_seq)`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.event_arrivals_mv TO ${db}.event_arrivals AS
        SELECT type, occurred_at, source, id, seq, stream_epoch, stream_seq FROM ${db}.events`,
      // Per (report, day, generation, group): the measures' mergeable parts as of `hwm`;
      // group_key '#' is the day's marker (its hwm, epoch and rules). A full recompute
      // starts a new generation, so nothing of an older one (other rules) mixes in.
      `CREATE TABLE IF NOT EXISTS ${db}.daily_state (
        report LowCardinality(String),
        day Date,
        generation String,
        group_key String,
        uniq_key String,
        hwm UInt64,
        epoch UInt64,
        rules String,
        events UInt64,
        known_at Int64,
        vals Map(String, ${MONEY_TYPE}),
        ns Map(String, UInt64)
      ) ENGINE = ReplacingMergeTree(hwm)
      ORDER BY (report, day, generation, group_key)`,
      // The distinct values behind each exact uniq, with the high-water mark of the
      // revision that first took each in: a delta's values are looked up by key.
      `CREATE TABLE IF NOT EXISTS ${db}.daily_uniq (
        report LowCardinality(String),
        day Date,
        generation String,
        group_key String,
        measure LowCardinality(String),
        value String,
        arrival UInt64,
        keep UInt64 MATERIALIZED 18446744073709551615 - arrival
      ) ENGINE = ReplacingMergeTree(keep)
      ORDER BY (report, day, generation, group_key, measure, value)`,
    ],
  },
  {
    version: REALTIME_FENCES_VERSION,
    name: 'realtime fences',
    statements: (db) => [
      // checkpoint: the number of the instance's checkpoint a row was written with. prev_*:
      // the row's figures as of the instance's last committed checkpoint (realtime/fence.ts),
      // what counts instead when the instance is fenced below the row's number.
      `ALTER TABLE ${db}.realtime_windows
        ADD COLUMN IF NOT EXISTS checkpoint UInt64 DEFAULT 0,
        ADD COLUMN IF NOT EXISTS prev_events UInt64 DEFAULT 0,
        ADD COLUMN IF NOT EXISTS prev_measures Map(String, ${MONEY_TYPE}) DEFAULT map(),
        ADD COLUMN IF NOT EXISTS prev_parts Map(String, ${MONEY_TYPE}) DEFAULT map(),
        ADD COLUMN IF NOT EXISTS prev_uniq_values Map(String, Array(String)) DEFAULT map(),
        ADD COLUMN IF NOT EXISTS prev_late_refused UInt64 DEFAULT 0`,
      // One row per instance another one fenced: its rows numbered above `checkpoint` do not count.
      `CREATE TABLE IF NOT EXISTS ${db}.realtime_fences (
        instance String,
        checkpoint UInt64,
        fenced_by String,
        fenced_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree
      ORDER BY (instance, checkpoint)
      TTL toDateTime(fenced_at) + INTERVAL 60 DAY`,
    ],
  },
];

/**
 * Fills `group` in the rows written before it existed, from group_key and each report's
 * groupBy names (`reports` of the options; a report not named there, or whose key no longer
 * has as many values as its groupBy, is named by position: '1', '2', …). Values as
 * namedGroup (processors/logic/group-names.ts) writes them: strings as themselves, others as
 * JSON. Only rows still without a group are touched, so a rerun after a crash is harmless.
 */
async function nameExistingGroups(client: ClickHouseClient, db: string, options: MigrateOptions): Promise<void> {
  // a literal, not a query parameter: the statement may run ON CLUSTER, through the DDL queue
  const entries = (options.reports ?? []).map((r) => `${sqlString(r.name)}, [${r.groupBy.map(sqlString).join(', ')}]`);
  const configured = `CAST(map(${entries.join(', ')}), 'Map(String, Array(String))')[report]`;
  const raw = 'JSONExtractArrayRaw(group_key)';
  const query = `ALTER TABLE ${db}.report_revisions UPDATE group = mapFromArrays(
      if(length(${configured}) = length(${raw}), ${configured}, arrayMap(i -> toString(i), range(1, length(${raw}) + 1))),
      arrayMap(v -> if(JSONType(v) = 'String', JSONExtractString(v), v), ${raw}))
    WHERE group_key != '' AND empty(group)`;
  // mutations_sync 2: done on every replica before the migration is recorded
  await client.command({ query: clusterDdl(options.cluster)(query), clickhouse_settings: { mutations_sync: '2' } });
}

/** A ClickHouse string literal: backslash and quote escaped, so a groupBy field named data.o'k stays one string. */
const sqlString = (text: string): string => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * `events` as of migration 8: an event's identity is (source, id), so the replacing key
 * holds both; sorted by (type, occurred_at) first, so a report's day stays a range scan.
 */
const eventsTable = (db: string, name: string): string => `CREATE TABLE ${db}.${name} (
    id String,
    occurred_at DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    delay_ms Int64,
    source LowCardinality(String),
    type LowCardinality(String),
    key Nullable(String),
    data String,
    nums Map(LowCardinality(String), ${MONEY_TYPE}),
    seq UInt64,
    keep UInt64 MATERIALIZED 18446744073709551615 - seq
  ) ENGINE = ReplacingMergeTree(keep)
  PARTITION BY toYYYYMM(occurred_at)
  ORDER BY (type, occurred_at, source, id)
  SETTINGS merge_selector_base = 20`;

/** Where the rows of `events` wait while it is rebuilt: before the exchange the new table, after it the old one. */
const REKEY_TABLE = 'events_rekey';

/**
 * Rows of the old table as the new one stores them. An id the gateway generated from
 * the stream sequence (`INGEST-<seq>`, with the row's own seq) moves to the reserved
 * namespace (`~INGEST-<seq>`), where such ids live now; every other id is kept.
 */
const copyRows = (db: string, into: string, from: string, where: string): string => `INSERT INTO ${db}.${into} (id, occurred_at, received_at, delay_ms, source, type, key, data, nums, seq)
  SELECT if(id = concat('INGEST-', toString(seq)), concat('~', id), id), occurred_at, received_at, delay_ms, source, type, key, data, nums, seq
  FROM ${db}.${from} WHERE ${where}`;

async function one<T>(client: ClickHouseClient, query: string, params: Record<string, unknown>): Promise<T | undefined> {
  return (await (await client.query({ query, query_params: params, format: 'JSONEachRow' })).json<T>())[0];
}

export type MigrateOptions = {
  /** `clickhouse.cluster`: every statement ON CLUSTER, with replicated engines */
  cluster?: string | undefined;
  /** apply migrations up to this version only (tests of a migration) */
  until?: number;
  /** a rebuild table nobody has written to for this long is taken for the leftover of a crashed run */
  staleAfterMs?: number;
  /** the configured reports: their groupBy names the values of group keys written before the `group` column */
  reports?: ReadonlyArray<{ name: string; groupBy: readonly string[] }>;
};

/** What every process migrating with its configuration passes: the cluster, and the reports' group names. */
export const migrationOptions = (config: Pick<Config, 'clickhouse' | 'reports'>): MigrateOptions => ({ cluster: config.clickhouse.cluster, reports: config.reports });

const clusterDdl = (cluster: string | undefined) => (statement: string): string => (cluster ? onCluster(statement, cluster) : statement);

/** EXCHANGE and DROP are not migration statements, so onCluster leaves them: they get ON CLUSTER here. */
const everywhere = (statement: string, cluster: string | undefined): string => (cluster ? `${statement} ON CLUSTER ${cluster}` : statement);

/** A rebuild writes a part at least every ~1M rows (seconds); one silent for this long has stopped. */
const STALE_AFTER_MS = 120_000;
const WAIT_MS = 500;

type RekeyState = { uuid: string; sorting_key: string; idle_ms: string };

/** The rebuild table, if any: its key says before (new key) or after (old key) the exchange; idle_ms, since its last write. */
const rekeyState = (client: ClickHouseClient, db: string): Promise<RekeyState | undefined> =>
  one<RekeyState>(client, `SELECT toString(uuid) AS uuid, sorting_key,
      toString(dateDiff('millisecond', greatest(metadata_modification_time,
        (SELECT max(modification_time) FROM system.parts WHERE database = {db:String} AND table = {name:String})), now64(3))) AS idle_ms
    FROM system.tables WHERE database = {db:String} AND name = {name:String}`, { db, name: REKEY_TABLE });

const isRekeyed = (sortingKey: string): boolean => /\bsource\b/.test(sortingKey);

const ALL_PARTITIONS = { max_partitions_per_insert_block: '0' } as const;

/** chDB's errors are not the client's ClickHouseError class (TRAPS): match on type or code. */
const isError = (err: unknown, type: string, code: string): boolean => {
  const e = err as { type?: string; code?: string };
  return e?.type === type || e?.code === code;
};

/** Copies what the old table (after the exchange) holds beyond `copied` parts, then drops it; a concurrent run may have done both already. */
async function catchUp(client: ClickHouseClient, db: string, copied: string[] | undefined, cluster: string | undefined): Promise<void> {
  const where = copied ? '_part NOT IN {parts:Array(String)}' : '1';
  try {
    await client.command({ query: copyRows(db, 'events', REKEY_TABLE, where), query_params: { parts: copied ?? [] }, clickhouse_settings: ALL_PARTITIONS });
  } catch (err) {
    // another run copied the whole old table over and dropped it
    if (!isError(err, 'UNKNOWN_TABLE', '60')) throw err;
  }
  await client.command({ query: everywhere(`DROP TABLE IF EXISTS ${db}.${REKEY_TABLE}`, cluster) + ' SYNC' });
}

/**
 * ClickHouse cannot change a sorting key's columns in place, so `events` is rebuilt:
 * `events_rekey` is created with the new key and filled with INSERT … SELECT from the
 * active parts of `events`, the two are swapped with EXCHANGE TABLES (atomic), then
 * rows that reached the old table during the copy (parts not copied) follow, and the
 * old table is dropped. Copies the replacing key keeps apart are harmless: FINAL folds them.
 *
 * Crash-safe and safe to run from several processes at once: creating `events_rekey`
 * (no IF NOT EXISTS) is the claim, so one run copies while the others wait. A run that
 * finds it after the exchange (old key) copies the whole old table over once more and
 * drops it (copies folded). One that finds it before the exchange waits while it is
 * being written, and drops it once silent for `staleAfterMs` (a crashed run's partial
 * copy), then starts over. Runs within one process are serialised (see `migrate`).
 */
async function rekeyEvents(client: ClickHouseClient, db: string, options: MigrateOptions): Promise<void> {
  const staleAfterMs = options.staleAfterMs ?? STALE_AFTER_MS;
  for (;;) {
    const events = await one<{ sorting_key: string }>(client, 'SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = {name:String}', { db, name: 'events' });
    if (!events) return;
    const rekey = await rekeyState(client, db);
    if (rekey && !isRekeyed(rekey.sorting_key)) {
      await catchUp(client, db, undefined, options.cluster);
      continue;
    }
    if (isRekeyed(events.sorting_key)) {
      if (!rekey) return;
      // a new-key rebuild table next to a rebuilt events: the loser of two runs that both swapped; its rows are copies
      await catchUp(client, db, undefined, options.cluster);
      continue;
    }
    if (rekey) {
      if (Number(rekey.idle_ms) >= staleAfterMs) await client.command({ query: everywhere(`DROP TABLE IF EXISTS ${db}.${REKEY_TABLE}`, options.cluster) + ' SYNC' });
      else await sleep(WAIT_MS);
      continue;
    }
    try {
      await client.command({ query: clusterDdl(options.cluster)(eventsTable(db, REKEY_TABLE)) });
    } catch (err) {
      // another run claimed the rebuild first
      if (isError(err, 'TABLE_ALREADY_EXISTS', '57')) continue;
      throw err;
    }
    const mine = await rekeyState(client, db);
    const parts = await (await client.query({
      query: 'SELECT name FROM system.parts WHERE database = {db:String} AND table = {name:String} AND active',
      query_params: { db, name: 'events' },
      format: 'JSONEachRow',
    })).json<{ name: string }>();
    const copied = parts.map((p) => p.name);
    await client.command({ query: copyRows(db, REKEY_TABLE, 'events', '_part IN {parts:Array(String)}'), query_params: { parts: copied }, clickhouse_settings: ALL_PARTITIONS });
    // swapped only if the rebuild table is still ours: a run that took it for a crashed one's may have replaced it
    if ((await rekeyState(client, db))?.uuid !== mine?.uuid) continue;
    await client.command({ query: everywhere(`EXCHANGE TABLES ${db}.events AND ${db}.${REKEY_TABLE}`, options.cluster) });
    await catchUp(client, db, copied, options.cluster);
    return;
  }
}

/**
 * Runs a statement; an ALTER of a table swapped by EXCHANGE moments before (migration 8)
 * can be refused with "Cannot alter table because it was renamed" while the engine
 * settles (measured through chDB right after the rebuild): it is retried for a while.
 */
async function alterSettled(client: ClickHouseClient, query: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await client.command({ query });
      return;
    } catch (err) {
      if (attempt >= 40 || !/because it was renamed/i.test(String((err as Error)?.message))) throw err;
      await sleep(WAIT_MS);
    }
  }
}

export type MigrationResult = { applied: string[]; current: number };

/** The statements that make the database and its bookkeeping table, before any migration. */
const bootstrap = (db: string): string[] => [
  `CREATE DATABASE IF NOT EXISTS ${db}`,
  `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
      ENGINE = ReplacingMergeTree ORDER BY version`,
];

/** Every statement a fresh database gets, in order, as it runs on a single server or, with `cluster`, on that cluster. */
export function schemaStatements(db: string, cluster?: string): string[] {
  const all = [...bootstrap(db), ...MIGRATIONS.flatMap((m) => m.statements(db))];
  return cluster ? all.map((statement) => onCluster(statement, cluster)) : all;
}

/** Migrations under way in this process, by database: a second caller waits for the first. */
const running = new Map<string, Promise<unknown>>();

/**
 * Brings the database to the latest schema; safe to call from every process at start, and
 * from several places of one. With `cluster` (config `clickhouse.cluster`) every statement
 * runs ON CLUSTER with replicated engines (see cluster-ddl.ts).
 */
export async function migrate(client: ClickHouseClient, db: string, options: MigrateOptions = {}): Promise<MigrationResult> {
  const previous = running.get(db) ?? Promise.resolve();
  const mine = previous.catch(() => undefined).then(() => migrateNow(client, db, options));
  running.set(db, mine);
  try {
    return await mine;
  } finally {
    if (running.get(db) === mine) running.delete(db);
  }
}

async function migrateNow(client: ClickHouseClient, db: string, options: MigrateOptions): Promise<MigrationResult> {
  const until = options.until ?? Number.POSITIVE_INFINITY;
  const ddl = clusterDdl(options.cluster);
  for (const statement of bootstrap(db)) await client.command({ query: ddl(statement) });
  const rows = await (await client.query({ query: `SELECT DISTINCT version FROM ${db}.schema_migrations`, format: 'JSONEachRow' })).json<{ version: number }>();
  const done = new Set(rows.map((r) => Number(r.version)));
  const applied: string[] = [];
  for (const migration of MIGRATIONS) {
    if (done.has(migration.version) || migration.version > until) continue;
    for (const statement of migration.statements(db)) await alterSettled(client, ddl(statement));
    await migration.run?.(client, db, options);
    // no refusal possible: a version number and a name, both constants of this file
    await client.insert({ table: `${db}.schema_migrations`, values: [{ version: migration.version, name: migration.name }], format: 'JSONEachRow' });
    applied.push(`${migration.version} ${migration.name}`);
  }
  return { applied, current: Math.max(0, ...MIGRATIONS.map((m) => m.version)) };
}
