import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { openClickHouse } from '../../src/clickhouse/client.ts';
import { decodeEvents } from '../../src/core/envelope.ts';
import { freePort } from '../../src/nats/embedded-server.ts';
import { createBatchPublisher } from '../../src/nats/batch-publisher.ts';
import { LEASE_BUCKET } from '../../src/nats/lease.ts';
import { publishRetrying, retryTransient } from '../../src/nats/retry.ts';
import { DAILY_BUCKET, type StoredRevision } from '../../src/processors/daily/revision-store.ts';
import { openSagaStore } from '../../src/saga/topology.ts';
import { freshTopology, storedMessages, useTestCluster, type ClusterNode } from '../harness/cluster.ts';
import { testConfig } from '../harness/config.ts';
import { exited, spawnTidemarkCaptured, terminate, type CapturedTidemark } from '../harness/processes.ts';
import { waitFor } from '../harness/streams.ts';
import { expectedRun, mixedScripts, startRole, startServices, trigger, verifyAgainstOracle } from '../support/saga.ts';
import { expectOracleFigures, salesReport, seededSales, type RawMessage } from '../support/seeded-stream.ts';

/**
 * The production shape on loopback: three nats-servers, every stream and bucket with
 * three replicas, roles connected with the whole server list. Each test kills the
 * leader of one stream with SIGKILL in the middle of a stream of work and checks the
 * outcome against the same oracle as the single-server crash tests.
 */
const settings = {
  nats: { replicas: 3, ackWait: '3s' },
  processor: { batchSize: 250 },
  ingest: { eventsPerMessage: 10, lease: '2s' },
  reports: [salesReport],
  sagas: { ackWait: '1s', concurrency: 32 },
};
const config = testConfig(settings);
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
const report = config.reports[0]!;

const cluster = useTestCluster();

/** Publishes through JetStream with a message id each, so what a leaderless moment refused is sent again and stored once. */
async function publishAll(messages: RawMessage[], offset: number): Promise<void> {
  const publisher = createBatchPublisher(cluster.nc);
  try {
    for (let i = 0; i < messages.length; i += 500) {
      const items = messages.slice(i, i + 500).map((m, k) => ({ subject: m.subject, data: m.body, msgId: `raw-${offset + i + k}` }));
      const outcomes = await publishRetrying(publisher, items, { budgetMs: 60_000 });
      expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    }
  } finally {
    publisher.close();
  }
}

/** After the restart the killed server holds a current copy again. */
async function restartAndCatchUp(node: ClusterNode, streams: string[]): Promise<void> {
  await node.start();
  for (const stream of streams) await cluster.waitForCurrent(cluster.jsm, stream, 45_000);
}

const alertIds = async (): Promise<string[]> => (await storedMessages(cluster.jsm, 'ALERTS')).map((m) => m.json<{ id: string }>().id);

/** The latest entry of every key of the daily bucket, from its stream. */
async function dailyEntries(): Promise<Map<string, string | null>> {
  const latest = new Map<string, string | null>();
  const prefix = `$KV.${DAILY_BUCKET}.`;
  for (const m of await storedMessages(cluster.jsm, `KV_${DAILY_BUCKET}`)) {
    const op = m.header?.get('KV-Operation');
    latest.set(m.subject.slice(prefix.length), op === 'DEL' || op === 'PURGE' ? null : m.string());
  }
  return latest;
}

/** Every event is on EVENTS, the processor acked all of it, and no day is left dirty. */
async function waitForDailyViewOnCluster(events: number): Promise<void> {
  let seen = 0;
  await waitFor(async () => {
    const ids = new Set((await storedMessages(cluster.jsm, 'EVENTS')).flatMap((m) => decodeEvents(m.data).map((e) => e.id)));
    seen = ids.size;
    return ids.size === events;
  }, 90_000, 'every event on EVENTS').catch((err: Error) => {
    throw new Error(`${err.message} (${seen} of ${events} there at the last look)`);
  });
  await waitFor(async () => {
    const info = await cluster.jsm.consumers.info('EVENTS', 'processor');
    return info.num_pending === 0 && info.num_ack_pending === 0;
  }, 60_000, 'the processor to ack every event');
  await waitFor(async () => [...(await dailyEntries())].every(([key, value]) => !key.startsWith('dirty.') || value === null), 60_000, 'every dirty day to be revised');
}

/** How long two of the three servers stay down in the quorum test: longer than a role's retry budget for one call (30 s) would make it a different test. */
const QUORUM_OUTAGE_MS = 15_000;

/**
 * `target`'s leader is killed; with `quorumLoss`, another server with it, and one of
 * the two comes back after QUORUM_OUTAGE_MS (the other only at the end).
 */
async function pipelineThroughKill(target: string, quorumLoss = false): Promise<void> {
  await freshTopology(cluster.js, cluster.jsm, config);
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-failover-'));
  const configFile = join(dir, 'tidemark.yaml');
  writeFileSync(configFile, JSON.stringify(settings));
  const env = { NATS_URL: cluster.url, TIDEMARK_DATA_DIR: dir, TIDEMARK_HTTP_PORT: '0', TIDEMARK_CLICKHOUSE_HTTP_PORT: String(await freePort()) };
  const captured: CapturedTidemark[] = [];
  const roles = () => captured.map((c) => c.child);
  try {
    for (const role of ['processor', 'gateway', 'gateway']) captured.push(spawnTidemarkCaptured([role, '--config', configFile], env));
    const { unique, all } = seededSales(Date.now(), 2_000, 100);
    const half = Math.floor(all.length / 2);
    await publishAll(all.slice(0, half), 0);
    await waitFor(async () => (await cluster.jsm.consumers.info('EVENTS', 'processor')).ack_floor.stream_seq > 20, 60_000, 'the processor to be under way');

    const victim = await cluster.leaderOf(cluster.jsm, target);
    const started = performance.now();
    if (!quorumLoss) {
      await victim.kill();
      await publishAll(all.slice(half), half);
    } else {
      const other = cluster.nodes.find((n) => n !== victim)!;
      const floorBefore = (await cluster.jsm.consumers.info('EVENTS', 'processor')).ack_floor.stream_seq;
      await Promise.all([victim.kill(), other.kill()]);
      const killedAt = performance.now();
      // the second half is sent during the outage: refused while no leader answers, retried until one does
      const second = publishAll(all.slice(half), half);
      // no quorum: JetStream answers nothing, so nothing can be stored or acked
      await expect(retryTransient(() => cluster.jsm.streams.info('EVENTS'), { budgetMs: 3_000 })).rejects.toThrow();
      await new Promise((r) => setTimeout(r, Math.max(0, QUORUM_OUTAGE_MS - (performance.now() - killedAt))));
      expect(roles().map((r) => r.exitCode ?? r.signalCode)).toEqual([null, null, null]);
      const restartedAt = performance.now();
      await other.start();
      await cluster.leaderOf(cluster.jsm, 'EVENTS');
      const leaderMs = performance.now() - restartedAt;
      await waitFor(async () => (await retryTransient(() => cluster.jsm.consumers.info('EVENTS', 'processor'))).ack_floor.stream_seq > floorBefore, 120_000, 'the processor to ack again');
      const resumeMs = performance.now() - restartedAt;
      await second;
      logger.info({ outageMs: Math.round(restartedAt - killedAt), leaderMs: Math.round(leaderMs), resumeMs: Math.round(resumeMs) }, 'two of three servers lost, one back');
    }
    await waitForDailyViewOnCluster(unique.length);
    // no role exited or gave up during the failover
    expect(roles().map((r) => r.exitCode ?? r.signalCode)).toEqual([null, null, null]);
    expect((await cluster.leaderOf(cluster.jsm, target)).name).not.toBe(victim.name);

    // every revision claimed in KV reaches ClickHouse and is marked written (a write in flight at the check finishes)
    await waitFor(async () => {
      const revisions = [...(await dailyEntries())].filter(([key, value]) => key.startsWith('rev.') && value !== null);
      return revisions.length > 0 && revisions.every(([, value]) => (JSON.parse(value!) as StoredRevision).written);
    }, 30_000, 'every claimed revision to be written');
    const ids = await alertIds();
    expect(ids.length).toBeGreaterThan(0);
    expect(new Set(ids).size).toBe(ids.length);
    // one gateway holds the lease, renewed through the failover (waited for: a renewal
    // between reading the bucket's state and its message rolls that message away)
    const lease = await waitFor(async () => (await leaseEntries()).get('gateway'), 60_000, 'the gateway lease entry');
    expect(JSON.parse(lease)).toMatchObject({ holder: expect.any(String) });

    if (quorumLoss) logger.info({ allInMs: Math.round(performance.now() - started) }, 'every event in the daily view after the quorum loss');
    await restartAndCatchUp(victim, ['EVENTS', 'INGEST', `KV_${DAILY_BUCKET}`]);
    for (const role of roles()) expect(await terminate(role)).toBe(0);
    const client = openClickHouse(testConfig({ dataDir: dir }));
    try {
      await expectOracleFigures(client, config.clickhouse.database, report, unique);
    } finally {
      await client.close();
    }
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await failoverState(captured)}`, { cause: err });
  } finally {
    for (const role of roles()) {
      role.kill('SIGKILL');
      await exited(role);
    }
    rmSync(dir, { recursive: true, force: true });
    // a test that failed before bringing its killed servers back must not leave the next one a crippled cluster
    for (const node of cluster.nodes) if (!node.running()) await node.start();
  }
}

/** What a failed failover test leaves to read: the consumers' progress and each role's warnings and errors. */
async function failoverState(captured: CapturedTidemark[]): Promise<string> {
  const lines: string[] = [];
  for (const [stream, durable] of [['INGEST', 'gateway'], ['EVENTS', 'processor']] as const) {
    const info = await retryTransient(() => cluster.jsm.consumers.info(stream, durable), { budgetMs: 5_000 }).catch((err: unknown) => String(err));
    lines.push(typeof info === 'string' ? `${stream}/${durable}: ${info}` : `${stream}/${durable}: ${JSON.stringify({ leader: info.cluster?.leader, delivered: info.delivered.stream_seq, ackFloor: info.ack_floor.stream_seq, pending: info.num_pending, ackPending: info.num_ack_pending, redelivered: info.num_redelivered, waiting: info.num_waiting })}`);
  }
  for (const [i, role] of captured.entries()) {
    const logged = `${role.stdout()}${role.stderr()}`.split('\n').filter((l) => l.trim() !== '');
    lines.push(`role ${i} (pid ${role.child.pid}, exit ${role.child.exitCode ?? role.child.signalCode}), last of ${logged.length} lines:`, ...logged.slice(-15).map((l) => `  ${l.slice(0, 600)}`));
  }
  return lines.join('\n');
}

/** The latest value of every key of the lease bucket. */
async function leaseEntries(): Promise<Map<string, string>> {
  const prefix = `$KV.${LEASE_BUCKET}.`;
  return new Map((await storedMessages(cluster.jsm, `KV_${LEASE_BUCKET}`)).map((m) => [m.subject.slice(prefix.length), m.string()]));
}

describe('kill -9 of a stream leader in a three-node cluster', () => {
  it('EVENTS: every event counted once, figures equal the oracle, revisions gap-free, no alert twice; the server catches up', async () => {
    await pipelineThroughKill('EVENTS');
  }, 180_000);

  it('two of three servers (the EVENTS leader and another) for 15 s: the pipeline stalls, resumes when one returns, figures equal the oracle', async () => {
    await pipelineThroughKill('EVENTS', true);
  }, 240_000);

  it('KV_tidemark_daily: the daily view reaches the oracle figures with gap-free revisions; the server catches up', async () => {
    await pipelineThroughKill(`KV_${DAILY_BUCKET}`);
  }, 180_000);

  it('SAGAS: every saga ends as the oracle says, each command dispatched once; the server catches up', async () => {
    await freshTopology(cluster.js, cluster.jsm, config);
    const conn = cluster;
    const store = await openSagaStore(cluster.js, createBatchPublisher(cluster.nc), 3);
    const services = await startServices(cluster.js, cluster.jsm, 30);
    const role = await startRole(conn, config, { timeout: 120_000 });
    try {
      const scripts = mixedScripts(120, 5);
      const ids = scripts.map((_, i) => `f-${i}`);
      const start = (from: number, to: number) => Promise.all(ids.slice(from, to).map((id, i) => retryTransient(() => trigger(cluster.js, id, scripts[from + i]!))));
      await start(0, 60);
      const ended = async () => (await store.list('order.>')).filter((l) => ['completed', 'compensated', 'parked'].includes(l.record.status)).length;
      await waitFor(async () => (await ended()) >= 15, 30_000, 'some sagas to end');

      const victim = await cluster.leaderOf(cluster.jsm, 'SAGAS');
      await victim.kill();
      await start(60, 120);
      const expected = scripts.map((script) => expectedRun(script).status);
      await waitFor(async () => {
        const loaded = await Promise.all(ids.map((id) => store.load(`order.${id}`)));
        return loaded.every((l, i) => l?.record.status === expected[i]);
      }, 90_000, 'every saga to end as the oracle says while the server is down');
      await restartAndCatchUp(victim, ['SAGAS', 'KV_tidemark_sagas']);
      // the commands each saga sent are read with an ephemeral consumer, which needs every server up on 2.9.10
      await verifyAgainstOracle(store, conn, ids, scripts, 30_000);
    } finally {
      await role.stop();
      await services.stop();
    }
  }, 180_000);
});
