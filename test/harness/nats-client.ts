import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Config } from '../../src/core/config.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { useFixture } from './fixture.ts';
import { startTestNats, type TestNats } from './nats.ts';

export type ConnectedNats = {
  server: TestNats;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** Closes the connection, then stops the server and deletes its store. */
  dispose: () => Promise<void>;
};

/** A real nats-server (startTestNats) and a client of it; given a config, Tidemark's topology for it is made too. */
export async function startConnectedNats(config?: Config): Promise<ConnectedNats> {
  const server = await startTestNats();
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  if (config) await ensureTopology(jsm, config);
  return {
    server,
    nc,
    js: jetstream(nc),
    jsm,
    dispose: async () => {
      await nc.close();
      await server.dispose();
    },
  };
}

/** startConnectedNats for the whole test file (see useFixture). */
export const useConnectedNats = (config?: Config): ConnectedNats => useFixture(() => startConnectedNats(config));

/** A bare nats-server for the whole test file, for tests that connect on their own terms. */
export const useTestNats = (): TestNats => useFixture(() => startTestNats());
