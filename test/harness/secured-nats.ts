import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/nats/embedded-server.ts';
import { spawnNatsServer } from './nats.ts';

export type SecuredNats = { url: string; port: number; dir: string; dispose: () => Promise<void> };

/**
 * nats-server with JetStream and the given extra configuration (authorization, TLS, an
 * operator), on a free loopback port with a throw-away store. `extra` gets the server's
 * directory, to write files it refers to.
 */
export async function startSecuredNats(extra: (dir: string) => string, scheme = 'nats'): Promise<SecuredNats> {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-secured-nats-'));
  const port = await freePort();
  const conf = join(dir, 'nats-server.conf');
  writeFileSync(conf, `host: 127.0.0.1\nport: ${port}\njetstream { store_dir: "${join(dir, 'js')}" }\n${extra(dir)}\n`);
  const server = await spawnNatsServer(conf).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    dir,
    dispose: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
