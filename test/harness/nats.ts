import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startNatsServer, type EmbeddedNats } from '../../src/nats/embedded-server.ts';

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

export type PlainNats = { port: number; pid: number; dispose: () => Promise<void> };

/**
 * nats-server exactly as Debian's packaged service runs it: a configuration file holding only
 * host and port, so no JetStream.
 */
export async function startPlainNats(): Promise<PlainNats> {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-plain-nats-'));
  const port = await freePort();
  const conf = join(dir, 'nats-server.conf');
  writeFileSync(conf, `host: 127.0.0.1\nport: ${port}\n`);
  const server = await spawnNatsServer(conf);
  return {
    port,
    pid: server.pid,
    dispose: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** nats-server started with a configuration file, resolved once it says it is ready; `stop` sends SIGTERM and waits for the exit. */
export async function spawnNatsServer(conf: string): Promise<{ pid: number; stop: () => Promise<void> }> {
  const child = spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('Server is ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`nats-server exited with ${code}: ${log}`)));
  });
  child.stderr!.resume();
  return {
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    },
  };
}
