import type { ChildProcess } from 'node:child_process';
import { Kvm } from '@nats-io/kv';
import { LEASE_BUCKET } from '../../src/nats/lease.ts';
import { testConfig } from './config.ts';
import { writeConfigDir } from './config-dir.ts';
import { useFixture } from './fixture.ts';
import { startConnectedNats, type ConnectedNats } from './nats-client.ts';
import { spawnTidemark } from './processes.ts';

export type GatewayFixture = ConnectedNats & {
  /** A `tidemark gateway` process on this server, with the fixture's settings. */
  startGateway: () => ChildProcess;
  /** How far the gateway durable has acked INGEST. */
  forwarded: () => Promise<number>;
  /** The pid in the gateway lease holder's name (`<host>-<pid>-<random>`); none while no one holds it. */
  holderPid: () => Promise<number | undefined>;
};

/** A nats-server with the topology for `settings`, and gateways to start as separate processes. */
export async function startGatewayFixture(settings: Record<string, unknown>): Promise<GatewayFixture> {
  const nats = await startConnectedNats(testConfig(settings));
  const { dir, configFile, dispose } = writeConfigDir(settings, 'tidemark-gateways-');
  return {
    ...nats,
    startGateway: () => spawnTidemark(['gateway', '--config', configFile], { NATS_URL: nats.server.url, TIDEMARK_HTTP_PORT: '0', TIDEMARK_DATA_DIR: dir }),
    forwarded: async () => (await nats.jsm.consumers.info('INGEST', 'gateway')).ack_floor.stream_seq,
    holderPid: async () => {
      const entry = await (await new Kvm(nats.js).open(LEASE_BUCKET)).get('gateway');
      if (!entry || entry.operation !== 'PUT') return undefined;
      return Number(/-(\d+)-[0-9a-f]+$/.exec(entry.json<{ holder: string }>().holder)?.[1]);
    },
    dispose: async () => {
      await nats.dispose();
      await dispose();
    },
  };
}

/** startGatewayFixture for the whole test file (see useFixture). */
export const useGatewayFixture = (settings: Record<string, unknown>): GatewayFixture => useFixture(() => startGatewayFixture(settings));
