import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNatsServer, type EmbeddedNats } from '../../src/nats/embedded-server.ts';

export type TestNats = EmbeddedNats & { storeDir: string; restart: () => Promise<void>; dispose: () => Promise<void> };

/** A real nats-server with JetStream on a free port and a throw-away store; `dispose` stops it and deletes the store. */
export async function startTestNats(): Promise<TestNats> {
  const storeDir = mkdtempSync(join(tmpdir(), 'tidemark-nats-'));
  let server = await startNatsServer({ storeDir, port: 0 });
  const port = server.port;
  const handle: TestNats = {
    get url() {
      return server.url;
    },
    port,
    storeDir,
    stop: () => server.stop(),
    restart: async () => {
      await server.stop();
      server = await startNatsServer({ storeDir, port });
    },
    dispose: async () => {
      await server.stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
  return handle;
}
