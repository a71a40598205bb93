import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/nats/embedded-server.ts';

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
  const child = spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('Server is ready')) resolve();
    });
    child.once('exit', (code) => {
      rmSync(dir, { recursive: true, force: true });
      reject(new Error(`nats-server exited with ${code}: ${log}`));
    });
  });
  child.stderr!.resume();
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    dir,
    dispose: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
