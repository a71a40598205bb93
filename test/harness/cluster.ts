import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type StoredMsg } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort } from '../../src/nats/embedded-server.ts';
import { serverList } from '../../src/nats/connect.ts';
import type { Config } from '../../src/core/config.ts';
import { retryTransient } from '../../src/nats/retry.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { ensureSagaTopology } from '../../src/saga/topology.ts';
import { useFixture } from './fixture.ts';
import { waitFor } from './streams.ts';

/** One nats-server of the cluster; `kill` is a SIGKILL, `start` brings it back on the same ports and store. */
export type ClusterNode = {
  name: string;
  url: string;
  storeDir: string;
  running: () => boolean;
  kill: () => Promise<void>;
  start: () => Promise<void>;
};

export type TestCluster = {
  nodes: ClusterNode[];
  /** every client URL, comma-separated, as NATS_URL takes it */
  url: string;
  /** the node that leads `stream` now (for a bucket: `KV_<bucket>`) */
  leaderOf: (jsm: JetStreamManager, stream: string) => Promise<ClusterNode>;
  /** until `stream` has a leader and every replica is current: after a restart, the node has caught up */
  waitForCurrent: (jsm: JetStreamManager, stream: string, timeoutMs?: number) => Promise<void>;
  dispose: () => Promise<void>;
};

const children = new Set<ChildProcess>();
// a test that fails half-way must not leave servers running after the test file's process ends
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

const exited = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

async function answers(url: string): Promise<boolean> {
  try {
    const nc = await connect({ servers: url, timeout: 500, reconnect: false });
    await nc.close();
    return true;
  } catch {
    return false;
  }
}

function startNode(name: string, port: number, clusterPort: number, peers: number[], root: string): ClusterNode {
  const storeDir = join(root, name);
  mkdirSync(storeDir, { recursive: true });
  const confFile = join(root, `${name}.conf`);
  writeFileSync(confFile, [
    `server_name: ${name}`,
    `listen: 127.0.0.1:${port}`,
    `jetstream { store_dir: "${storeDir}" }`,
    `cluster {`,
    `  name: tidemark-test`,
    `  listen: 127.0.0.1:${clusterPort}`,
    `  routes: [${peers.map((p) => `nats-route://127.0.0.1:${p}`).join(', ')}]`,
    `}`,
    '',
  ].join('\n'));
  const url = `nats://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const node: ClusterNode = {
    name,
    url,
    storeDir,
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    kill: async () => {
      if (!child || !node.running()) return;
      child.kill('SIGKILL');
      await exited(child);
    },
    start: async () => {
      if (node.running()) return;
      const started = spawn('nats-server', ['-c', confFile], { stdio: ['ignore', 'ignore', 'ignore'] });
      children.add(started);
      started.once('exit', () => children.delete(started));
      child = started;
      await waitFor(async () => {
        if (started.exitCode !== null) throw new Error(`${name} exited with code ${started.exitCode}`);
        return answers(url);
      }, 15_000, `${name} to accept clients`);
    },
  };
  return node;
}

/** Every node answers, and JetStream can place a three-replica stream: routes are up and a meta leader is elected. */
async function waitForJetStream(url: string): Promise<void> {
  const nc = await connect({ servers: url.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000, checkAPI: false });
    await waitFor(async () => {
      await jsm.streams.add({ name: 'CLUSTER_PROBE', subjects: ['cluster.probe'], num_replicas: 3 });
      await jsm.streams.delete('CLUSTER_PROBE');
      return true;
    }, 30_000, 'the JetStream meta leader and three peers');
  } finally {
    await nc.close();
  }
}

/**
 * Three nats-servers with JetStream on free loopback ports, routed to each other, each
 * with its own store under a throw-away directory; resolves once JetStream can place
 * a three-replica stream.
 */
export async function startTestCluster(): Promise<TestCluster> {
  // a free port can be taken by another process before the server binds it: start again on new ones
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnFreePorts();
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

async function startOnFreePorts(): Promise<TestCluster> {
  const root = mkdtempSync(join(tmpdir(), 'tidemark-cluster-'));
  const ports = await Promise.all([0, 1, 2].map(async () => ({ client: await freePort(), route: await freePort() })));
  const nodes = ports.map((p, i) => startNode(`n${i + 1}`, p.client, p.route, ports.filter((_, j) => j !== i).map((q) => q.route), root));
  const url = nodes.map((n) => n.url).join(',');
  try {
    await Promise.all(nodes.map((n) => n.start()));
    await waitForJetStream(url);
  } catch (err) {
    await Promise.all(nodes.map((n) => n.kill()));
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  const leaderOf = async (jsm: JetStreamManager, stream: string): Promise<ClusterNode> => {
    const leader = await waitFor(async () => (await jsm.streams.info(stream)).cluster?.leader, 30_000, `a leader of ${stream}`);
    const node = nodes.find((n) => n.name === leader);
    if (!node) throw new Error(`${stream} is led by ${leader}, not a node of this cluster`);
    return node;
  };
  return {
    nodes,
    url,
    leaderOf,
    waitForCurrent: async (jsm, stream, timeoutMs = 30_000) => {
      await waitFor(async () => {
        const info = await jsm.streams.info(stream);
        const replicas = info.cluster?.replicas ?? [];
        return info.cluster?.leader !== undefined && replicas.length === info.config.num_replicas - 1 && replicas.every((r) => r.current && !r.offline);
      }, timeoutMs, `every replica of ${stream} to be current`);
    },
    dispose: async () => {
      await Promise.all(nodes.map((n) => n.kill()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * Every message of a stream, read by sequence with direct gets: on 2.9.10 an ephemeral
 * consumer can be placed on the server that is down and then never answers, so tests
 * read without one while a server is away.
 */
export async function storedMessages(jsm: JetStreamManager, stream: string): Promise<StoredMsg[]> {
  const { state } = await retryTransient(() => jsm.streams.info(stream));
  const out: StoredMsg[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
    const msg = await retryTransient(() => jsm.streams.getMessage(stream, { seq }));
    if (msg) out.push(msg);
  }
  return out;
}

/** Which nodes lead which of `streams` now, for a test's log line: `n2 leads EVENTS, DLQ`. */
export async function leadersOf(cluster: TestCluster, jsm: JetStreamManager, streams: string[]): Promise<Record<string, string[]>> {
  const led: Record<string, string[]> = {};
  for (const stream of streams) (led[(await cluster.leaderOf(jsm, stream)).name] ??= []).push(stream);
  return led;
}

// generous: on a loaded machine, placing a dozen three-replica objects right after a server rejoined can take a while
const PATIENT = { budgetMs: 90_000 };

/** Every stream and bucket removed, patiently: right after a server was killed and restarted the meta leader may not answer at once (measured: a listing timed out at 5 s beside a bench). */
export async function removeAllStreams(jsm: JetStreamManager): Promise<void> {
  const names = await retryTransient(async () => {
    const listed: string[] = [];
    for await (const name of jsm.streams.names()) listed.push(name);
    return listed;
  }, PATIENT);
  for (const name of names) {
    // a delete that timed out may have been applied: its retry then finds the stream gone
    await retryTransient(() => jsm.streams.delete(name), PATIENT).catch((err: unknown) => {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
    });
  }
}

/** Every stream and bucket removed, then the topology of `config` made anew: each test starts from nothing. */
export async function freshTopology(js: JetStreamClient, jsm: JetStreamManager, config: Config): Promise<void> {
  await removeAllStreams(jsm);
  await retryTransient(() => ensureTopology(jsm, config), PATIENT);
  await retryTransient(() => ensureSagaTopology(js, jsm, config), PATIENT);
}

/** A client of the whole cluster as the roles connect: every server listed, reconnecting without end. */
export async function connectToCluster(cluster: TestCluster): Promise<{ nc: NatsConnection; js: JetStreamClient; jsm: JetStreamManager }> {
  const nc = await connect({ servers: serverList(cluster.url), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  return { nc, js: jetstream(nc), jsm: await jetstreamManager(nc) };
}

export type ClusterFixture = TestCluster & { nc: NatsConnection; js: JetStreamClient; jsm: JetStreamManager };

/** A three-node cluster (startTestCluster) and a client of it as the roles connect (connectToCluster), for the whole test file (see useFixture). */
export function useTestCluster(): ClusterFixture {
  return useFixture(async () => {
    const cluster = await startTestCluster();
    const client = await connectToCluster(cluster);
    return {
      ...cluster,
      ...client,
      dispose: async () => {
        await client.nc.close();
        await cluster.dispose();
      },
    };
  }, 60_000);
}
