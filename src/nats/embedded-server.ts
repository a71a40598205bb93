import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';

export type EmbeddedNats = { url: string; port: number; pid?: number; serverId?: string; stop: () => Promise<void> };

export const NATS_INSTALL_HINT =
  'nats-server was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install nats-server`, ' +
  'or run ./scripts/bootstrap.sh), or point NATS_URL at a running JetStream-enabled server.';

/** The oldest nats-server our streams, consumers and KV buckets are tested on (see TRAPS for what 2.9 lacks). */
export const MIN_NATS_SERVER = '2.9.0';

/** `nats-server --version` prints "nats-server: v2.9.10". */
export function parseNatsServerVersion(text: string): string | undefined {
  return /v?(\d+\.\d+\.\d+)/.exec(text)?.[1];
}

export function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split('.').map(Number);
  const b = minimum.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

/** A binary that does not answer `--version` within this long (a wrapper that starts a server instead) counts as missing. */
const VERSION_PROBE_MS = 3_000;

/** The installed nats-server's version, or undefined when it is not on PATH (or does not run). */
export function natsServerVersion(binary = 'nats-server'): string | undefined {
  const probe = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: VERSION_PROBE_MS, killSignal: 'SIGKILL' });
  if (probe.error !== undefined || probe.status !== 0) return undefined;
  return parseNatsServerVersion(`${probe.stdout} ${probe.stderr}`) ?? '0.0.0';
}

/** Throws the one-line error a user can act on when nats-server is missing or too old. */
export function assertNatsServerUsable(binary = 'nats-server'): string {
  const version = natsServerVersion(binary);
  if (version === undefined) throw new TidemarkError(ErrorCodes.NATS_SERVER_MISSING, NATS_INSTALL_HINT);
  if (!versionAtLeast(version, MIN_NATS_SERVER)) {
    throw new TidemarkError(
      ErrorCodes.NATS_SERVER_TOO_OLD,
      `nats-server ${version} is too old (Tidemark needs ${MIN_NATS_SERVER} or later): install a newer one (https://github.com/nats-io/nats-server/releases), or set NATS_URL to a JetStream-enabled server of ${MIN_NATS_SERVER}+`,
    );
  }
  return version;
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

/**
 * Waits for this child's own "Server is ready", reading the port it bound and its server id
 * from its log: whatever else may answer on that port is never taken for our server.
 */
function waitForOwnServer(child: ChildProcess, host: string, port: number): Promise<{ port: number; serverId?: string }> {
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => fail(new TidemarkError(ErrorCodes.NATS_SERVER_FAILED, `nats-server did not report ready within 30 s: ${log.trim().slice(-500)}`)), 30_000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.stderr?.removeAllListeners('data');
      reject(err);
    };
    child.stderr?.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-16_384);
      if (!/\[INF\] Server is ready/.test(log)) return;
      clearTimeout(timer);
      // keep draining the pipe so the server never blocks on a full stderr
      child.stderr?.removeAllListeners('data');
      child.stderr?.resume();
      const bound = /Listening for client connections on \S+:(\d+)/.exec(log)?.[1];
      const serverId = /\[INF\]\s+ID:\s+(\S+)/.exec(log)?.[1];
      resolve({ port: bound ? Number(bound) : port, ...(serverId ? { serverId } : {}) });
    });
    child.once('error', fail);
    child.once('exit', (code) => {
      if (/address already in use/.test(log)) {
        fail(new TidemarkError(ErrorCodes.PORT_IN_USE, `port ${port} on ${host} is already in use, so nats-server cannot listen there`));
      } else {
        fail(new TidemarkError(ErrorCodes.NATS_SERVER_FAILED, `nats-server exited with code ${code}: ${log.trim().slice(-2000)}`));
      }
    });
  });
}

/**
 * Starts nats-server with JetStream, its store under `storeDir`. Port 0 lets nats-server
 * pick a free port itself (no window in which another process could take it).
 */
export async function startNatsServer(options: { storeDir: string; host?: string; port?: number; binary?: string }): Promise<EmbeddedNats> {
  const binary = options.binary ?? 'nats-server';
  assertNatsServerUsable(binary);
  const host = options.host ?? '127.0.0.1';
  const wanted = options.port || -1;
  mkdirSync(options.storeDir, { recursive: true });
  const child = spawn(binary, ['-js', '-sd', options.storeDir, '-a', host, '-p', String(wanted)], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let ready: { port: number; serverId?: string };
  try {
    ready = await waitForOwnServer(child, host, wanted);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `nats://${urlHost}:${ready.port}`,
    port: ready.port,
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    ...(ready.serverId ? { serverId: ready.serverId } : {}),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
