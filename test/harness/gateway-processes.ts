import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ensureTopology } from '../../src/nats/topology.ts';
import { testConfig } from './config.ts';
import { startTestNats, type TestNats } from './nats.ts';
import { spawnTidemark } from './processes.ts';

export type GatewayFixture = {
  server: TestNats;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** A `tidemark gateway` process on this server, with the fixture's settings. */
  startGateway: () => ChildProcess;
  /** How far the gateway durable has acked INGEST. */
  forwarded: () => Promise<number>;
  dispose: () => Promise<void>;
};

/** A nats-server with the topology for `settings`, and gateways to start as separate processes. */
export async function startGatewayFixture(settings: Record<string, unknown>): Promise<GatewayFixture> {
  const server = await startTestNats();
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-gateways-'));
  const configFile = join(dir, 'tidemark.yaml');
  writeFileSync(configFile, JSON.stringify(settings));
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  await ensureTopology(jsm, testConfig(settings));
  return {
    server,
    nc,
    js: jetstream(nc),
    jsm,
    startGateway: () => spawnTidemark(['gateway', '--config', configFile], { NATS_URL: server.url, TIDEMARK_HTTP_PORT: '0', TIDEMARK_DATA_DIR: dir }),
    forwarded: async () => (await jsm.consumers.info('INGEST', 'gateway')).ack_floor.stream_seq,
    dispose: async () => {
      await nc.close();
      await server.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
