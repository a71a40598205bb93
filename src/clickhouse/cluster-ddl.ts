/**
 * The migrations for a self-managed ClickHouse cluster (`clickhouse.cluster`): every
 * statement runs `ON CLUSTER <name>`, and every MergeTree-family table becomes its
 * Replicated* twin, keyed by the `{shard}` and `{replica}` macros each server defines.
 * Tidemark writes one shard: each replica holds every row, so CLICKHOUSE_URL may point
 * at any replica or a load balancer in front of them. ClickHouse Cloud needs none of
 * this (it turns plain MergeTree engines into SharedMergeTree itself): leave
 * `clickhouse.cluster` unset there.
 */

/** Where a replicated table keeps its parts' metadata in (Zoo)Keeper; the same for every replica of a shard. */
export const REPLICA_PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'";

const ENGINE = /ENGINE\s*=\s*(ReplacingMergeTree|MergeTree|SummingMergeTree|AggregatingMergeTree|CollapsingMergeTree)\b(?:\(([^)]*)\))?/;

/** A plain MergeTree-family engine clause as its replicated form; the engine's own arguments go after the path and replica. */
function replicatedEngine(statement: string): string {
  return statement.replace(ENGINE, (_all, engine: string, args: string | undefined) => {
    const rest = args?.trim() ? `, ${args.trim()}` : '';
    return `ENGINE = Replicated${engine}(${REPLICA_PATH}${rest})`;
  });
}

const TARGET = [
  // CREATE DATABASE IF NOT EXISTS db | CREATE TABLE IF NOT EXISTS db.t | ALTER TABLE db.t
  /^(\s*(?:CREATE\s+DATABASE|CREATE\s+TABLE|ALTER\s+TABLE)(?:\s+IF\s+NOT\s+EXISTS)?\s+[A-Za-z_][\w.]*)/i,
  // CREATE OR REPLACE VIEW db.v
  /^(\s*CREATE\s+OR\s+REPLACE\s+VIEW\s+[A-Za-z_][\w.]*)/i,
  // CREATE MATERIALIZED VIEW IF NOT EXISTS db.mv (TO db.t): each replica's view feeds its
  // own replica of the target, which replicates like any table
  /^(\s*CREATE\s+MATERIALIZED\s+VIEW(?:\s+IF\s+NOT\s+EXISTS)?\s+[A-Za-z_][\w.]*)/i,
];

/** One migration statement as it must run on `cluster`. */
export function onCluster(statement: string, cluster: string): string {
  for (const target of TARGET) {
    if (target.test(statement)) return replicatedEngine(statement.replace(target, `$1 ON CLUSTER ${cluster}`));
  }
  return statement;
}
