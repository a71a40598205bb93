import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeEvent, eventSubject, type TidemarkEvent } from '../../src/core/envelope.ts';
import { shiftedClock } from '../support/clock.ts';
import type { DlqRecord } from '../../src/nats/dlq.ts';
import type { Alert, DelayedEventAlert, DelayedResolvedAlert } from '../../src/monitor/alerts.ts';
import { ALERT_GUARD_BUCKET } from '../../src/nats/alert-guard.ts';
import { startMonitor, type Monitor } from '../../src/monitor/monitor.ts';
import { MONITOR_BUCKET } from '../../src/monitor/state.ts';
import { createBatchPublisher } from '../../src/nats/batch-publisher.ts';
import { freePort } from '../../src/nats/embedded-server.ts';
import { publishRetrying } from '../../src/nats/retry.ts';
import { SAGA_BUCKET } from '../../src/saga/subjects.ts';
import { openSagaStore } from '../../src/saga/topology.ts';
import type { SagaRecord } from '../../src/saga/store.ts';
import { closeTestClickHouse, openTestClickHouse, type TestClickHouse } from '../harness/clickhouse.ts';
import { freshTopology, leadersOf, storedMessages, useTestCluster } from '../harness/cluster.ts';
import { testConfig } from '../harness/config.ts';
import { exited, spawnTidemark, terminate } from '../harness/processes.ts';
import { waitFor } from '../harness/streams.ts';

/**
 * The roles the first cluster file does not cover, on the same production shape
 * (three nats-servers, three replicas everywhere, the whole server list): the monitor,
 * the DLQ writers, and the saga store's watch, each through a `kill -9` of the server
 * that matters to it, then its restart.
 */
const MIN = 60_000;
const T0 = Date.parse('2030-03-01T00:00:00Z');
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });

const cluster = useTestCluster();

afterAll(async () => {
  await closeTestClickHouse();
});

/** Each role's objects are current on every server again: the killed one caught up. */
/** Whatever an earlier test left behind (a failure before its restart), each starts with all three servers up. */
async function allUp(): Promise<void> {
  for (const node of cluster.nodes) await node.start();
}

async function restartAndCatchUp(victim: { start: () => Promise<void> }, streams: string[]): Promise<void> {
  await victim.start();
  for (const stream of streams) await cluster.waitForCurrent(cluster.jsm, stream, 60_000);
}

describe('kill -9 on a three-node cluster: the monitor, the DLQ, the saga watch', () => {
  /**
   * The monitor leans on four objects: EVENTS (its input), ALERTS (its output, deduped by
   * alert id), KV_tidemark_alert_guard (one create per alert) and KV_tidemark_monitor.
   * The last is the one that matters most: every grouping, outage and schedule decision
   * is a compare-and-set on it, each tick waits for its watch to show the monitor's own
   * write (sync), and that watch's consumer is what 2.9.10 can re-place on a dead server.
   * So its leader is killed, while late-event groups wait for groupWait and a
   * missing-data outage is open.
   */
  it('monitor: the KV_tidemark_monitor leader killed mid-stream; every alert raised once on alerts.> and in the table; the server catches up', async () => {
    const ch: TestClickHouse = await openTestClickHouse();
    const config = testConfig({
      clickhouse: { database: ch.db },
      nats: { replicas: 3, ackWait: '3s' },
      slas: [
        { name: 'late', source: '*', maxDelay: '1m' },
        { name: 'beat', source: 'beat-1', type: 'beat', expect: { every: '1m' } },
      ],
      monitor: { groupWait: '1m', groupInterval: '5m', resolveAfter: '5m', grace: '1s', tick: '100ms', batchSize: 500 },
    });
    await allUp();
    await freshTopology(cluster.js, cluster.jsm, config);
    const clock = shiftedClock();
    clock.jumpTo(T0);
    const running: Monitor[] = [];
    const start = async (instance: string) => {
      const monitor = await startMonitor({ config, js: cluster.js, clickhouse: ch.client, logger, clock, registry: new Registry(), instance });
      running.push(monitor);
      return monitor;
    };
    const publisher = createBatchPublisher(cluster.nc);
    let seq = 1;
    const event = (source: string, type: string, occurredAt: number, receivedAt: number): TidemarkEvent => {
      const n = seq++;
      return { id: `${source}-${n}`, type, source, key: null, occurredAt, receivedAt, data: {}, seq: n };
    };
    const publish = async (events: TidemarkEvent[]) => {
      const outcomes = await publishRetrying(publisher, events.map((e) => ({ subject: eventSubject(e), data: encodeEvent(e), msgId: `${e.source}.${e.id}` })), { budgetMs: 90_000 });
      expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    };
    const drained = (durable: string, stream = 'EVENTS') => waitFor(async () => {
      const info = await cluster.jsm.consumers.info(stream, durable);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    }, 90_000, `${durable} to read all of ${stream}`);
    const onAlerts = async () => (await storedMessages(cluster.jsm, 'ALERTS')).map((m) => m.json<Alert>());
    const inTable = async () => (await (await ch.client.query({ query: `SELECT id FROM ${ch.db}.alerts ORDER BY id`, format: 'JSONEachRow' })).json<{ id: string }>()).map((r) => r.id);
    const kinds = (alerts: Alert[]) => alerts.map((a) => `${a.kind} ${a.source}`).sort();
    const late = (source: string, from: number) => Array.from({ length: 200 }, (_, i) => event(source, 'sale', from + i * 100 - 2 * MIN, from + i * 100));
    try {
      await start('a');
      // s1: 200 events two minutes late, merged while the clock stands at T0 (their group waits a minute); beat-1 silent since T0
      await publish(late('s1', T0));
      await drained('monitor');

      const victim = await cluster.leaderOf(cluster.jsm, `KV_${MONITOR_BUCKET}`);
      const watched = ['EVENTS', 'ALERTS', `KV_${MONITOR_BUCKET}`, `KV_${ALERT_GUARD_BUCKET}`];
      logger.info({ victim: victim.name, leaders: await leadersOf(cluster, cluster.jsm, watched) }, 'killing the monitor state leader');
      await victim.kill();
      // s2 arrives while the server is down; then the clock passes both groups' groupWait and beat-1's first empty minutes
      await publish(late('s2', T0 + 30_000));
      await drained('monitor');
      clock.jumpTo(T0 + 3 * MIN + 2_000);
      const first = await waitFor(async () => {
        const found = await onAlerts();
        return found.length >= 3 && found;
      }, 90_000, 'the DelayedEvent and MissingData alerts while the server is down');
      expect(kinds(first)).toEqual(['DelayedEvent s1', 'DelayedEvent s2', 'MissingData beat-1']);
      // exact grouped counts: no late event lost or merged twice through the failover
      const delayed = first.filter((a): a is DelayedEventAlert => a.kind === 'DelayedEvent').map((a) => [a.source, a.sequence, a.count, a.totalCount]);
      expect(delayed.sort()).toEqual([['s1', 1, 200, 200], ['s2', 1, 200, 200]]);

      await restartAndCatchUp(victim, watched);
      // beat-1 comes back (one beat a minute from 3m05s) and the late groups go quiet: three Resolved
      await publish(Array.from({ length: 10 }, (_, k) => T0 + (3 + k) * MIN + 5_000).map((at) => event('beat-1', 'beat', at, at)));
      await drained('monitor');
      clock.jumpTo(T0 + 12 * MIN + 30_000);
      const all = await waitFor(async () => {
        const found = await onAlerts();
        return found.length >= 6 && found;
      }, 90_000, 'the three Resolved alerts');
      expect(kinds(all)).toEqual(['DelayedEvent s1', 'DelayedEvent s2', 'MissingData beat-1', 'Resolved beat-1', 'Resolved s1', 'Resolved s2']);
      const resolved = all.filter((a): a is DelayedResolvedAlert => a.kind === 'Resolved' && a.resolvedKind === 'DelayedEvent').map((a) => [a.source, a.totalCount]);
      expect(resolved.sort()).toEqual([['s1', 200], ['s2', 200]]);

      // a new instance on the rejoined cluster, ticked by hand, raises nothing again
      for (const m of running.splice(0)) await m.stop();
      const again = await start('b');
      await again.tick();
      await again.tick();
      await drained('alert-sink', 'ALERTS');
      const ids = (await onAlerts()).map((a) => a.id);
      expect(ids).toHaveLength(6);
      expect(new Set(ids).size).toBe(6);
      expect(await waitFor(async () => {
        const rows = await inTable();
        return rows.length >= 6 && rows;
      }, 60_000, 'every alert in the alerts table')).toEqual([...ids].sort());
    } finally {
      for (const m of running) await m.stop();
      publisher.close();
      await ch.dispose();
    }
  }, 300_000);

  it('DLQ: its leader killed while both gateways file rejections; every record stored once, no HTTP request told "not stored"', async () => {
    const settings = { nats: { replicas: 3, ackWait: '3s' }, ingest: { lease: '2s' } };
    const config = testConfig(settings);
    await allUp();
    await freshTopology(cluster.js, cluster.jsm, config);
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-dlq-failover-'));
    const configFile = join(dir, 'tidemark.yaml');
    writeFileSync(configFile, JSON.stringify(settings));
    const httpPort = await freePort();
    const gateway: ChildProcess = spawnTidemark(['gateway', '--config', configFile], { NATS_URL: cluster.url, TIDEMARK_DATA_DIR: dir, TIDEMARK_HTTP_PORT: String(httpPort) });
    const publisher = createBatchPublisher(cluster.nc);
    const expected = new Set<string>();
    let stopped = false;
    const statuses: number[] = [];
    try {
      const http = `http://127.0.0.1:${httpPort}/v1/events`;
      await waitFor(async () => (await fetch(http.replace('/v1/events', '/readyz')).catch(() => undefined))?.ok, 60_000, 'the gateway to be ready');
      let n = 0;
      // a rejected raw message over NATS and one over HTTP every round, with a valid event beside each
      const load = (async () => {
        while (!stopped) {
          const k = n++;
          const raw = [`bad-nats-${k}`, `{"id":"ok-nats-${k}","type":"sale","occurredAt":${Date.now()},"data":{}}`];
          const outcomes = await publishRetrying(publisher, raw.map((data, i) => ({ subject: 'ingest.dlq-test.sale', data, msgId: `raw-${k}-${i}` })), { budgetMs: 90_000 });
          expect(outcomes.filter((o) => !o.ok)).toEqual([]);
          expected.add(`bad-nats-${k}`);
          const res = await fetch(http, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `bad-http-${k}\n{"id":"ok-http-${k}","source":"dlq-test","type":"sale","occurredAt":${Date.now()},"data":{}}\n` });
          statuses.push(res.status);
          await res.arrayBuffer();
          expected.add(`bad-http-${k}`);
        }
      })();
      const dlqRaws = async () => (await storedMessages(cluster.jsm, 'DLQ')).map((m) => Buffer.from(m.json<DlqRecord>().raw, 'base64').toString());
      await waitFor(async () => (await dlqRaws()).length >= 20, 60_000, 'the first DLQ records');
      const victim = await cluster.leaderOf(cluster.jsm, 'DLQ');
      logger.info({ victim: victim.name, leaders: await leadersOf(cluster, cluster.jsm, ['DLQ', 'INGEST', 'EVENTS']) }, 'killing the DLQ leader');
      await victim.kill();
      const atKill = n;
      await waitFor(async () => (await cluster.leaderOf(cluster.jsm, 'DLQ')).name !== victim.name && n >= atKill + 20, 120_000, 'twenty rounds filed after the DLQ elected a new leader');
      stopped = true;
      await load;
      await waitFor(async () => {
        const info = await cluster.jsm.consumers.info('INGEST', 'gateway');
        return info.num_pending === 0 && info.num_ack_pending === 0;
      }, 90_000, 'the gateway to forward all of INGEST');
      const raws = await waitFor(async () => {
        const found = await dlqRaws();
        return found.length >= expected.size && found;
      }, 60_000, 'every rejection in the DLQ');
      expect(raws.length).toBe(expected.size);
      expect(new Set(raws)).toEqual(expected);
      // every HTTP request had its rejection stored: 400 (some rejected), never 503 (not stored)
      expect(statuses.filter((s) => s !== 400)).toEqual([]);
      await restartAndCatchUp(victim, ['DLQ', 'INGEST', 'EVENTS']);
      expect(gateway.exitCode ?? gateway.signalCode).toBeNull();
      expect(await terminate(gateway)).toBe(0);
    } finally {
      stopped = true;
      publisher.close();
      gateway.kill('SIGKILL');
      await exited(gateway);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('saga store watch: the server holding its consumer killed; the watch comes back by itself and shows every later write', async () => {
    const config = testConfig({ nats: { replicas: 3 } });
    await allUp();
    await freshTopology(cluster.js, cluster.jsm, config);
    const publisher = createBatchPublisher(cluster.nc);
    // a watch that went quiet is noticed after 5 s here, not the orchestrators' 15 s: the test need not wait that long
    const store = await openSagaStore(cluster.js, publisher, 3, 5_000);
    const seen = new Map<string, number>();
    const watch = await store.watch((sagaId, revision) => seen.set(sagaId, Math.max(seen.get(sagaId) ?? 0, revision)));
    const record = (i: number, step: number): SagaRecord => ({ v: 1, sagaId: `order.w-${i}`, name: 'order', status: step < 5 ? 'running' : 'completed', due: null, events: [] });
    const latest = new Map<string, number>();
    const write = async (i: number, step: number) => latest.set(`order.w-${i}`, await store.save(record(i, step), latest.get(`order.w-${i}`) ?? null));
    const caughtUp = () => [...latest].every(([key, revision]) => (seen.get(key) ?? 0) >= revision);
    try {
      for (let i = 0; i < 20; i++) await write(i, 0);
      await waitFor(caughtUp, 30_000, 'the watch to show the first writes');
      const stream = `KV_${SAGA_BUCKET}`;
      // the watch's consumer and its leader, once the cluster reports one (waitFor retries a listing that times out on a loaded machine)
      const leader = await waitFor(async () => {
        const consumers = [];
        for await (const info of await cluster.jsm.consumers.list(stream)) consumers.push(info);
        return consumers.find((c) => c.config.durable_name === undefined && c.cluster?.leader)?.cluster?.leader;
      }, 60_000, 'the watch consumer to have a leader');
      const holder = cluster.nodes.find((node) => node.name === leader)!;
      expect(holder).toBeDefined();
      logger.info({ holder: holder.name, bucketLeader: (await cluster.leaderOf(cluster.jsm, stream)).name }, 'killing the server holding the watch consumer');
      await holder.kill();
      for (let step = 1; step <= 5; step++) for (let i = 0; i < 20; i++) await write(i, step);
      await waitFor(caughtUp, 90_000, 'the watch to show every write made after the kill');
      await restartAndCatchUp(holder, [stream]);
      for (let i = 20; i < 30; i++) await write(i, 0);
      await waitFor(caughtUp, 60_000, 'the watch to show writes after the restart');
      logger.info({ restarts: watch.restarts() }, 'saga watch restarts');
    } finally {
      watch.stop();
      publisher.close();
    }
  }, 300_000);
});
