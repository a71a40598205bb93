import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect, createServer } from 'node:net';

/** What listens on a port, as far as we can tell: the process (when /proc lets us see it) and, for NATS, what the server says of itself. */
export type PortHolder = {
  pid?: number;
  command?: string;
  nats?: { version: string; jetstream: boolean; serverId: string };
};

/** True when we could listen on host:port now (the same test a server's bind makes). */
export function isPortFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A NATS server greets every client with `INFO {...}`; anything else (or silence) is not NATS. */
export function natsGreeting(host: string, port: number, timeoutMs = 1_000): Promise<PortHolder['nats'] | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let data = '';
    const done = (value: PortHolder['nats'] | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on('error', () => done(undefined));
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      const end = data.indexOf('\r\n');
      if (end < 0 && data.length < 64 * 1024) return;
      const line = data.slice(0, end < 0 ? undefined : end);
      if (!line.startsWith('INFO ')) return done(undefined);
      try {
        const info = JSON.parse(line.slice(5)) as { version?: string; jetstream?: boolean; server_id?: string };
        done({ version: info.version ?? '?', jetstream: info.jetstream === true, serverId: info.server_id ?? '?' });
      } catch {
        done(undefined);
      }
    });
  });
}

/** Listening sockets on `port` from /proc/net/tcp{,6}: their inodes (Linux only; empty elsewhere). */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // cols: sl, local_address, rem_address, st (0A = LISTEN), …, inode at 9
      if (cols.length > 9 && cols[1]!.endsWith(`:${hexPort}`) && cols[3] === '0A') inodes.add(cols[9]!);
    }
  }
  return inodes;
}

/** The process holding one of `inodes`, if it is ours to see (another user's process, e.g. a system service, is not). */
function processOwning(inodes: Set<string>): { pid: number; command: string } | undefined {
  if (inodes.size === 0) return undefined;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode && inodes.has(inode)) return { pid: Number(pid), command: commandLine(Number(pid)) };
    }
  }
  return undefined;
}

export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, 120);
  } catch {
    return '';
  }
}

/** Undefined when the port is free; otherwise whatever we can learn about who holds it. */
export async function portHolder(host: string, port: number): Promise<PortHolder | undefined> {
  if (await isPortFree(host, port)) return undefined;
  const owner = processOwning(listeningInodes(port));
  const nats = await natsGreeting(host === '0.0.0.0' ? '127.0.0.1' : host, port);
  return { ...(owner ? { pid: owner.pid, command: owner.command } : {}), ...(nats ? { nats } : {}) };
}

/** "nats-server 2.9.10 without JetStream (pid 812: /usr/sbin/nats-server -c /etc/nats-server.conf)" */
export function describeHolder(holder: PortHolder): string {
  const what = holder.nats ? `nats-server ${holder.nats.version} ${holder.nats.jetstream ? 'with' : 'without'} JetStream` : 'another program';
  const who = holder.pid === undefined ? ' (a process of another user, e.g. a system service)' : ` (pid ${holder.pid}${holder.command ? `: ${holder.command}` : ''})`;
  return what + who;
}
