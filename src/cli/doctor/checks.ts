import { join, resolve } from 'node:path';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, nuid, type NatsConnection } from '@nats-io/transport-node';
import { BASE_SETTINGS, openClickHouse } from '../../clickhouse/client.ts';
import type { Config } from '../../core/config.ts';
import { MIN_NATS_SERVER, NATS_INSTALL_HINT, natsServerVersion, versionAtLeast } from '../../nats/embedded-server.ts';
import { assertWritable, describeOwner, readDataDirOwner, type DataDirOwner } from '../data-dir-lock.ts';
import { describeHolder, portHolder } from '../ports.ts';
import { natsTarget } from '../runtime.ts';
import { endpointLogin } from '../../clickhouse/endpoint-users.ts';
import { redactUserInfo } from '../../core/secrets.ts';

/** pass ✓, warn ! (works, but worth knowing), fail ✗ (something will not start or not work). */
export type CheckResult = { status: 'pass' | 'warn' | 'fail'; text: string; fix?: string };

/** A clock further than this from the NATS server's skews receivedAt against occurredAt for the delay SLAs. */
export const MAX_CLOCK_OFFSET_MS = 1_000;

export function checkNatsServerBinary(binary = 'nats-server'): CheckResult {
  const version = natsServerVersion(binary);
  if (version === undefined) return { status: 'fail', text: 'nats-server is not on PATH', fix: NATS_INSTALL_HINT };
  if (!versionAtLeast(version, MIN_NATS_SERVER)) return { status: 'fail', text: `nats-server ${version} is too old (${MIN_NATS_SERVER}+ needed)`, fix: 'install a newer nats-server, or set NATS_URL to a JetStream server of that version' };
  return { status: 'pass', text: `nats-server ${version} on PATH` };
}

export function checkDataDir(config: Config, owner: DataDirOwner | undefined): CheckResult {
  const dir = resolve(config.dataDir);
  try {
    assertWritable(dir);
  } catch (err) {
    const cause = (err as Error).cause as NodeJS.ErrnoException | undefined;
    return { status: 'fail', text: `data directory ${dir} is not writable (${cause?.code ?? cause?.message ?? 'refused'})`, fix: 'fix its permissions, or set TIDEMARK_DATA_DIR to a writable directory' };
  }
  if (owner) return { status: 'warn', text: `data directory ${dir} is in use by ${describeOwner(owner)}`, fix: 'other commands here use its servers; a second `tidemark up` here would stop (use another TIDEMARK_DATA_DIR)' };
  return { status: 'pass', text: `data directory ${dir} is writable and not in use` };
}

/** Whether the owner of the data directory is the one serving `port` (its URLs say so). */
const ownersPort = (owner: DataDirOwner | undefined, port: number): boolean =>
  owner !== undefined && [owner.nats, owner.sql, owner.http].some((url) => url !== undefined && new RegExp(`:${port}(/|$)`).test(url));

export async function checkPort(what: string, host: string, port: number, setting: string, owner: DataDirOwner | undefined, ifTaken: 'warn' | 'fail', moveNote?: string): Promise<CheckResult> {
  if (port === 0) return { status: 'pass', text: `${what}: any free port (0)` };
  const holder = await portHolder(host, port);
  if (!holder) return { status: 'pass', text: `port ${port} (${what}) is free` };
  if (ownersPort(owner, port) || (holder.pid !== undefined && holder.pid === owner?.pid)) return { status: 'pass', text: `port ${port} (${what}) is used by ${describeOwner(owner!)}` };
  return { status: ifTaken, text: `port ${port} (${what}) is held by ${describeHolder(holder)}`, fix: moveNote ?? `stop it, or set ${setting} to another port (0 = any free port)` };
}

async function tryConnect(url: string): Promise<NatsConnection | Error> {
  try {
    return await connect({ servers: url, timeout: CHECK_MS.nats - 1_000, reconnect: false, name: 'tidemark-doctor' });
  } catch (err) {
    return err as Error;
  }
}

/**
 * NATS where roles would connect: NATS_URL, or the data directory owner's server. With neither,
 * only a JetStream server already on the embedded port would be used; the port check covers the rest.
 */
export async function checkNats(config: Config): Promise<{ result: CheckResult; nc?: NatsConnection }> {
  const target = natsTarget(config);
  if (target.from === 'default') {
    const holder = await portHolder(config.nats.embedded.host, config.nats.embedded.port);
    if (!holder?.nats?.jetstream) return { result: { status: 'pass', text: 'NATS_URL is unset and no tidemark up runs here: `tidemark up` will start its own nats-server with JetStream' } };
  }
  const source = target.from === 'NATS_URL' ? ' (NATS_URL)' : target.from === 'owner' ? ' (tidemark up)' : '';
  const nc = await tryConnect(target.url);
  if (nc instanceof Error) {
    return { result: { status: 'fail', text: `cannot reach NATS at ${target.url}${source}: ${nc.message}`, fix: target.from === 'NATS_URL' ? 'start that server or correct NATS_URL' : 'start `tidemark up`, or set NATS_URL' } };
  }
  const info = nc.info;
  if (info?.jetstream !== true) {
    await nc.close();
    return { result: { status: 'fail', text: `NATS at ${target.url}${source} is nats-server ${info?.version ?? '?'} with JetStream disabled`, fix: 'enable JetStream there (nats-server -js), or unset NATS_URL and let `tidemark up` run its own' } };
  }
  return { result: { status: 'pass', text: `NATS at ${target.url}${source}: nats-server ${info.version}, JetStream enabled` }, nc };
}

/**
 * The server stamps a stored message with its clock; comparing that with the middle of our
 * round trip gives our offset, give or take half the round trip. A throw-away memory stream
 * holds the message for the moment it takes.
 */
export async function measureClockOffset(nc: NatsConnection): Promise<{ offsetMs: number; uncertaintyMs: number }> {
  const jsm = await jetstreamManager(nc);
  const id = nuid.next();
  const name = `TIDEMARK_DOCTOR_${id}`;
  const subject = `_tidemark.doctor.${id}`;
  await jsm.streams.add({ name, subjects: [subject], storage: StorageType.Memory, max_msgs: 1 });
  try {
    const before = Date.now();
    const ack = await jetstream(nc).publish(subject, '');
    const after = Date.now();
    const stored = await jsm.streams.getMessage(name, { seq: ack.seq });
    return { offsetMs: (before + after) / 2 - stored!.time.getTime(), uncertaintyMs: (after - before) / 2 };
  } finally {
    await jsm.streams.delete(name).catch(() => undefined);
  }
}

export async function checkClock(nc: NatsConnection | undefined): Promise<CheckResult> {
  if (!nc) return { status: 'warn', text: 'clock offset from the NATS server not measured (no JetStream server to ask)' };
  try {
    const { offsetMs, uncertaintyMs } = await measureClockOffset(nc);
    const text = `clock is ${Math.abs(offsetMs).toFixed(0)} ms ${offsetMs >= 0 ? 'ahead of' : 'behind'} the NATS server's (± ${uncertaintyMs.toFixed(0)} ms)`;
    if (Math.abs(offsetMs) - uncertaintyMs > MAX_CLOCK_OFFSET_MS) return { status: 'fail', text, fix: 'synchronise the clocks (e.g. `sudo timedatectl set-ntp true`): delays and deadlines are measured against them' };
    return { status: 'pass', text };
  } catch (err) {
    return { status: 'warn', text: `clock offset from the NATS server not measured: ${(err as Error).message}` };
  }
}

async function versionOf(client: ClickHouseClient): Promise<string> {
  const rows = await (await client.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' })).json<{ v: string }>();
  return rows[0]?.v ?? '?';
}

export async function checkClickHouse(config: Config, owner: DataDirOwner | undefined): Promise<CheckResult> {
  const url = config.clickhouse.url ?? owner?.sql;
  if (url) {
    const login = config.clickhouse.url ? { username: config.clickhouse.user ?? 'default', password: config.clickhouse.password ?? '' } : endpointLogin(config);
    const client = createClient({ url, ...login, clickhouse_settings: BASE_SETTINGS, request_timeout: CHECK_MS.clickhouse - 1_000, log: { level: ClickHouseLogLevel.OFF } });
    const source = config.clickhouse.url ? 'CLICKHOUSE_URL' : 'tidemark up';
    try {
      return { status: 'pass', text: `ClickHouse at ${redactUserInfo(url)} (${source}): version ${await versionOf(client)}` };
    } catch (err) {
      return { status: 'fail', text: `cannot query ClickHouse at ${redactUserInfo(url)} (${source}): ${(err as Error).message}`, fix: config.clickhouse.url ? 'start it, or correct CLICKHOUSE_URL / CLICKHOUSE_USER / CLICKHOUSE_PASSWORD' : 'restart `tidemark up`' };
    } finally {
      await client.close();
    }
  }
  if (owner) return { status: 'warn', text: `embedded ClickHouse belongs to ${describeOwner(owner)}, which does not serve it yet` };
  const path = join(resolve(config.dataDir), 'clickhouse');
  let client: ClickHouseClient | undefined;
  try {
    assertWritable(resolve(config.dataDir));
    client = openClickHouse(config);
    return { status: 'pass', text: `embedded ClickHouse (chDB) opens in ${path}: version ${await versionOf(client)}` };
  } catch (err) {
    return { status: 'fail', text: `embedded ClickHouse cannot open ${path}: ${(err as Error).message.split('\n')[0]}`, fix: 'stop the process that holds it, or set TIDEMARK_DATA_DIR or CLICKHOUSE_URL' };
  } finally {
    await client?.close().catch(() => undefined);
  }
}

/**
 * How long each check may take. Every network step has its own timeout below these; the bound
 * is the guarantee (a server that accepts and never answers, a stuck engine), so doctor always
 * finishes: the checks that can wait run at once, so the whole run takes at most the
 * binary's probe (3 s), the largest of these, and the clock check.
 */
export const CHECK_MS = { port: 3_000, nats: 3_000, clickhouse: 5_000, clock: 3_000 } as const;

/** The check's result, or a failure saying it did not answer in time. */
export async function within(ms: number, what: string, check: Promise<CheckResult>): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => resolve({ status: 'fail', text: `${what}: no answer within ${ms / 1000} s`, fix: 'run with --verbose, or check what holds it (the check above may say)' }), ms);
  });
  try {
    return await Promise.race([check, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every check, in the order a first run meets them. */
export async function runChecks(config: Config): Promise<CheckResult[]> {
  const owner = readDataDirOwner(config.dataDir);
  // Synchronous (a bounded probe of the binary): before the timed checks start, so it eats none of their time.
  const results: CheckResult[] = [checkNatsServerBinary(), checkDataDir(config, owner)];
  const { host, port } = config.nats.embedded;
  const pending: Array<Promise<CheckResult>> = [
    within(CHECK_MS.port, `port ${port} (embedded NATS)`, checkPort('embedded NATS', host, port, 'TIDEMARK_NATS_PORT', owner, 'warn', config.nats.url ? 'not needed: NATS_URL is set' : '`tidemark up` will start its own nats-server on a free port and print it; commands run elsewhere need NATS_URL')),
    within(CHECK_MS.port, `port ${config.http.port} (HTTP gateway)`, checkPort('HTTP gateway', config.http.host, config.http.port, 'TIDEMARK_HTTP_PORT', owner, 'fail')),
  ];
  if (!config.clickhouse.url) {
    const { host: chHost, port: chPort } = config.clickhouse.serve;
    pending.push(within(CHECK_MS.port, `port ${chPort} (embedded ClickHouse HTTP)`, checkPort('embedded ClickHouse HTTP', chHost, chPort, 'TIDEMARK_CLICKHOUSE_HTTP_PORT', owner, 'fail')));
  }
  let nc: NatsConnection | undefined;
  const natsCheck = checkNats(config).then((nats) => {
    nc = nats.nc;
    return nats.result;
  });
  pending.push(within(CHECK_MS.nats, 'NATS', natsCheck));
  pending.push(within(CHECK_MS.clickhouse, 'ClickHouse', checkClickHouse(config, owner)));
  results.push(...(await Promise.all(pending)));
  try {
    results.push(await within(CHECK_MS.clock, 'clock offset from the NATS server', checkClock(nc)));
  } finally {
    // A connection that only answers after its check gave up is closed when it does.
    if (nc) await nc.close();
    else void natsCheck.then(() => nc?.close(), () => undefined);
  }
  return results;
}
