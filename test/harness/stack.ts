import type { Config } from '../../src/core/config.ts';
import { closeTestClickHouse, openTestClickHouse, type TestClickHouse } from './clickhouse.ts';
import { useFixture } from './fixture.ts';
import { startConnectedNats, type ConnectedNats } from './nats-client.ts';

export type TestStack = ConnectedNats & {
  ch: TestClickHouse;
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
  const ch = await openTestClickHouse();
  const config = configFor(ch.db);
  const nats = await startConnectedNats(config);
  return {
    ...nats, ch, config,
    dispose: async () => {
      await nats.dispose();
      await ch.dispose();
    },
  };
}

/** startTestStack for the whole test file (see useFixture); the file's ClickHouse engine is closed after it. */
export function useTestStack(configFor: (database: string) => Config): TestStack {
  return useFixture(async () => {
    const stack = await startTestStack(configFor);
    return {
      ...stack,
      dispose: async () => {
        await stack.dispose();
        await closeTestClickHouse();
      },
    };
  });
}
