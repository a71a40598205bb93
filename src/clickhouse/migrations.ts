import type { ClickHouseClient } from '@clickhouse/client';

/**
 * The ClickHouse query surface of SPEC §4, as ordered, append-only migrations.
 * Every statement is idempotent (IF NOT EXISTS / OR REPLACE), so two processes
 * migrating at once, or a crash between a statement and its bookkeeping row, are
 * harmless: the next run repeats what was not recorded.
 */
export type Migration = { version: number; name: string; statements: (db: string) => string[] };

/** Exact to 20 decimal places with 56 integer digits: every amount a JSON string can reasonably carry. */
export const MONEY_TYPE = 'Decimal(76, 20)';

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
      `CREATE OR REPLACE VIEW ${db}.report_latest AS
        SELECT * FROM ${db}.report_revisions FINAL
        ORDER BY report, day, group_key, revision DESC
        LIMIT 1 BY report, day, group_key`,
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
        timing Enum8('early' = 1, 'on_time' = 2),
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
];

export type MigrationResult = { applied: string[]; current: number };

/** Brings the database to the latest schema; safe to call from every process at start. */
export async function migrate(client: ClickHouseClient, db: string): Promise<MigrationResult> {
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` });
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
      ENGINE = ReplacingMergeTree ORDER BY version`,
  });
  const rows = await (await client.query({ query: `SELECT DISTINCT version FROM ${db}.schema_migrations`, format: 'JSONEachRow' })).json<{ version: number }>();
  const done = new Set(rows.map((r) => Number(r.version)));
  const applied: string[] = [];
  for (const migration of MIGRATIONS) {
    if (done.has(migration.version)) continue;
    for (const statement of migration.statements(db)) await client.command({ query: statement });
    await client.insert({ table: `${db}.schema_migrations`, values: [{ version: migration.version, name: migration.name }], format: 'JSONEachRow' });
    applied.push(`${migration.version} ${migration.name}`);
  }
  return { applied, current: Math.max(0, ...MIGRATIONS.map((m) => m.version)) };
}
