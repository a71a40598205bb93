import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Config } from '../../src/core/config.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { openTestClickHouse, type TestClickHouse } from './clickhouse.ts';
import { startTestNats, type TestNats } from './nats.ts';

export type TestStack = {
  server: TestNats;
  ch: TestClickHouse;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  config: Config;
  /** Closes the connection, stops the server and drops the database (the file's afterAll still calls closeTestClickHouse). */
  dispose: () => Promise<void>;
};

/**
 * What the monitor, reconciliation and webhook tests stand on: a real nats-server on a free port,
 * a freshly migrated database, a connection, and Tidemark's topology for the config that
 * `configFor` builds around that database's name.
 */
export async function startTestStack(configFor: (database: string) => Config): Promise<TestStack> {
  const server = await startTestNats();
  const ch = await openTestClickHouse();
  const config = configFor(ch.db);
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await ensureTopology(jsm, config);
  return {
    server, ch, nc, js, jsm, config,
    dispose: async () => {
      await nc.close();
      await server.dispose();
      await ch.dispose();
    },
  };
}
