import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { connect } from '@nats-io/transport-node';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';

export type EmbeddedNats = { url: string; port: number; pid?: number; stop: () => Promise<void> };

export const NATS_INSTALL_HINT =
  'nats-server was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install nats-server`, ' +
  'or run ./scripts/bootstrap.sh), or point NATS_URL at a running JetStream-enabled server.';

export function natsServerAvailable(binary = 'nats-server'): boolean {
  const probe = spawnSync(binary, ['--version'], { stdio: 'ignore' });
  return probe.error === undefined && probe.status === 0;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitForServer(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new TidemarkError(ErrorCodes.NATS_SERVER_FAILED, `nats-server exited with code ${child.exitCode}: ${stderr().trim().slice(-2000)}`);
    }
    try {
      const nc = await connect({ servers: url, timeout: 500, reconnect: false });
      await nc.close();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new TidemarkError(ErrorCodes.NATS_SERVER_FAILED, `nats-server did not start at ${url}`, { cause: err });
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Starts nats-server with JetStream, its store under `storeDir`. Port 0 picks a free
 * port (tests); the embedded default is 4222 so `nats pub` works without flags.
 */
export async function startNatsServer(options: { storeDir: string; host?: string; port?: number; binary?: string }): Promise<EmbeddedNats> {
  const binary = options.binary ?? 'nats-server';
  if (!natsServerAvailable(binary)) throw new TidemarkError(ErrorCodes.NATS_SERVER_MISSING, NATS_INSTALL_HINT);
  const host = options.host ?? '127.0.0.1';
  const port = options.port || (await freePort(host));
  mkdirSync(options.storeDir, { recursive: true });
  const child = spawn(binary, ['-js', '-sd', options.storeDir, '-a', host, '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-8192);
  });
  const url = `nats://${host}:${port}`;
  try {
    await waitForServer(url, child, () => log);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    url,
    port,
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
