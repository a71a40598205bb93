import { describe, expect, it } from 'vitest';
import { onCluster, REPLICA_PATH } from '../../src/clickhouse/cluster-ddl.ts';
import { schemaStatements } from '../../src/clickhouse/migrations.ts';
import { useTestClickHouse } from '../harness/clickhouse.ts';

const ch = useTestClickHouse();

/** ClickHouse's own parser, through chDB: the statement as it would reformat it, or its syntax error. */
async function formatted(statement: string): Promise<string> {
  const rows = await (await ch.client.query({ query: 'SELECT formatQuerySingleLine({q:String}) AS f', query_params: { q: statement }, format: 'JSONEachRow' })).json<{ f: string }>();
  return rows[0]!.f;
}

describe('migrations on a ClickHouse cluster (clickhouse.cluster)', () => {
  it('runs every statement ON CLUSTER with a replicated engine that keeps the plain engine\'s arguments', () => {
    const plain = schemaStatements('tidemark');
    const clustered = schemaStatements('tidemark', 'tm');
    expect(clustered).toHaveLength(plain.length);
    for (const statement of clustered) {
      expect(statement).toMatch(/^\s*(CREATE DATABASE IF NOT EXISTS tidemark|CREATE TABLE IF NOT EXISTS tidemark\.\w+|CREATE OR REPLACE VIEW tidemark\.\w+|CREATE MATERIALIZED VIEW IF NOT EXISTS tidemark\.\w+|ALTER TABLE tidemark\.\w+) ON CLUSTER tm\b/);
      if (/^\s*CREATE TABLE/.test(statement)) {
        expect(statement).toMatch(/ENGINE = Replicated(Replacing)?MergeTree\('\/clickhouse\/tables\/\{shard\}\/\{database\}\/\{table\}', '\{replica\}'/);
        expect(statement).not.toMatch(/ENGINE = (Replacing)?MergeTree/);
      }
    }
    const events = clustered.find((s) => s.includes('tidemark.events ON CLUSTER tm ('))!;
    expect(events).toContain(`ENGINE = ReplicatedReplacingMergeTree(${REPLICA_PATH}, keep)`);
    expect(clustered.find((s) => s.includes('MATERIALIZED VIEW'))).toMatch(/^\s*CREATE MATERIALIZED VIEW IF NOT EXISTS tidemark\.event_arrivals_mv ON CLUSTER tm TO tidemark\.event_arrivals AS/);
    expect(onCluster('CREATE TABLE IF NOT EXISTS d.t (a UInt8) ENGINE = MergeTree ORDER BY a', 'c')).toBe(`CREATE TABLE IF NOT EXISTS d.t ON CLUSTER c (a UInt8) ENGINE = ReplicatedMergeTree(${REPLICA_PATH}) ORDER BY a`);
  });

  it('every clustered statement parses in ClickHouse, and the parse keeps ON CLUSTER and the replicated engine', async () => {
    for (const statement of schemaStatements('tidemark', 'tm')) {
      const f = await formatted(statement);
      expect(f).toContain('ON CLUSTER tm');
      if (/^\s*CREATE TABLE/.test(statement)) expect(f).toMatch(/ENGINE = Replicated\w*MergeTree\('\/clickhouse\/tables\/\{shard\}\/\{database\}\/\{table\}', '\{replica\}'/);
    }
  });

  it('runs the single-server statements as they are, making every table', async () => {
    const db = `${ch.db}_plain`;
    for (const statement of schemaStatements(db)) await ch.client.command({ query: statement });
    const tables = await (await ch.client.query({ query: 'SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name', query_params: { db }, format: 'JSONEachRow' })).json<{ name: string }>();
    expect(tables.map((t) => t.name)).toEqual(['alert_deliveries', 'alerts', 'daily_state', 'daily_uniq', 'delay_slices', 'delay_stats', 'event_arrivals', 'event_arrivals_mv', 'events', 'realtime_fences', 'realtime_windows', 'recon_actions', 'recon_discrepancies', 'recon_runs', 'report_latest', 'report_revisions', 'saga_steps', 'sagas', 'schema_migrations']);
    await ch.client.command({ query: `DROP DATABASE ${db}` });
  });
});
