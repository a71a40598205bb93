import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUCKETS } from '../../src/nats/buckets.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { ensureSagaTopology } from '../../src/saga/topology.ts';
import { removeAllStreams, startTestCluster, type TestCluster } from '../harness/cluster.ts';
import { testConfig } from '../harness/config.ts';
import { waitFor } from '../harness/streams.ts';

let cluster: TestCluster;
let nc: NatsConnection;
let jsm: JetStreamManager;
const js = () => jetstream(nc, { timeout: 30_000 });

beforeAll(async () => {
  cluster = await startTestCluster();
  nc = await connect({ servers: cluster.url.split(','), maxReconnectAttempts: -1 });
  // a loaded machine answers changes on a cluster slowly: a long timeout, so each change is made once and reported once;
  // reads that go unanswered (a consumer info right after its stream changed replicas, on 2.9.10) are retried within the election budget
  jsm = await jetstreamManager(nc, { timeout: 8_000 });
}, 60_000);

afterAll(async () => {
  await nc?.close();
  await cluster?.dispose();
});

const replicasOf = async (stream: string): Promise<number> => (await jsm.streams.info(stream)).config.num_replicas;
const kvStreams = Object.values(BUCKETS).map((b) => `KV_${b}`);

describe('replicas on a three-node cluster', () => {
  it('raises every stream and bucket an earlier version made with one replica to nats.replicas in place, keeping the data, and says so', async () => {
    const before = testConfig();
    await ensureTopology(jsm, before);
    await ensureSagaTopology(js(), jsm, before);
    await (await new Kvm(jetstream(nc)).open(BUCKETS.daily)).put('rev.r.2026-12-01.x', '{"kept":true}');
    for (const stream of ['INGEST', 'EVENTS', 'DLQ', 'ALERTS', 'SAGAS', ...kvStreams]) expect(await replicasOf(stream)).toBe(1);

    const after = testConfig({ nats: { replicas: 3, streams: { dlq: { maxAge: '30d', replicas: 1 } }, buckets: { monitor: { replicas: 1 } } } });
    const changes = [...(await ensureTopology(jsm, after)), ...(await ensureSagaTopology(js(), jsm, after))];
    const raised = changes.filter((c) => c.action === 'updated').map((c) => `${c.name}: ${c.detail}`);
    expect(raised).toEqual([
      'INGEST: replicas 1 → 3', 'EVENTS: replicas 1 → 3', 'ALERTS: replicas 1 → 3',
      'tidemark_daily: replicas 1 → 3', 'tidemark_leases: replicas 1 → 3', 'tidemark_sagas: replicas 1 → 3',
      'tidemark_alert_guard: replicas 1 → 3', 'tidemark_recon_claims: replicas 1 → 3', 'tidemark_realtime_fence: replicas 1 → 3',
      'SAGAS: replicas 1 → 3',
    ]);
    for (const stream of ['INGEST', 'EVENTS', 'ALERTS', 'SAGAS', ...kvStreams.filter((s) => s !== `KV_${BUCKETS.monitor}`)]) {
      expect(await replicasOf(stream)).toBe(3);
      await cluster.waitForCurrent(jsm, stream);
    }
    expect(await replicasOf('DLQ')).toBe(1);
    expect(await replicasOf(`KV_${BUCKETS.monitor}`)).toBe(1);
    // ensureTopology returned once every raised stream had a leader and current replicas: the leader has the entry now
    const viaLeader = await jsm.streams.getMessage(`KV_${BUCKETS.daily}`, { last_by_subj: `$KV.${BUCKETS.daily}.rev.r.2026-12-01.x` });
    expect(viaLeader?.json<{ kept: boolean }>()).toEqual({ kept: true });
    // and every server's replica holds it: a client of one server has its direct gets answered by that server's replica,
    // which may still be catching up for a moment (stream info calls a replica current up to 1.4 s early at load 11)
    for (const node of cluster.nodes) {
      const one = await connect({ servers: node.url, maxReconnectAttempts: -1 });
      try {
        const kv = await new Kvm(jetstream(one)).open(BUCKETS.daily);
        await waitFor(async () => (await kv.get('rev.r.2026-12-01.x'))?.json<{ kept: boolean }>().kept === true, 60_000, `the daily entry read through ${node.name}`);
      } finally {
        await one.close();
      }
    }

    const again = [...(await ensureTopology(jsm, after)), ...(await ensureSagaTopology(js(), jsm, after))];
    expect(again.filter((c) => c.action !== 'unchanged')).toEqual([]);
  }, 90_000);

  it('creates every stream and bucket with nats.replicas when none exists', async () => {
    // whatever an earlier test (or none) left: this test starts from no stream at all
    await removeAllStreams(jsm);
    const config = testConfig({ nats: { replicas: 3 } });
    await ensureTopology(jsm, config);
    await ensureSagaTopology(jetstream(nc), jsm, config);
    for (const stream of ['INGEST', 'EVENTS', 'DLQ', 'ALERTS', 'SAGAS', ...kvStreams]) expect(await replicasOf(stream)).toBe(3);
  }, 60_000);
});
