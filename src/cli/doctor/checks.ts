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
    return await connect({ servers: url, timeout: 2_000, reconnect: false, name: 'tidemark-doctor' });
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
    const client = createClient({ url, ...login, clickhouse_settings: BASE_SETTINGS, request_timeout: 5_000, log: { level: ClickHouseLogLevel.OFF } });
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

/** Every check, in the order a first run meets them. */
export async function runChecks(config: Config): Promise<CheckResult[]> {
  const owner = readDataDirOwner(config.dataDir);
  const results: CheckResult[] = [checkNatsServerBinary(), checkDataDir(config, owner)];
  const { host, port } = config.nats.embedded;
  results.push(await checkPort('embedded NATS', host, port, 'TIDEMARK_NATS_PORT', owner, 'warn', config.nats.url ? 'not needed: NATS_URL is set' : '`tidemark up` will start its own nats-server on a free port and print it; commands run elsewhere need NATS_URL'));
  results.push(await checkPort('HTTP gateway', config.http.host, config.http.port, 'TIDEMARK_HTTP_PORT', owner, 'fail'));
  if (!config.clickhouse.url) results.push(await checkPort('embedded ClickHouse HTTP', config.clickhouse.serve.host, config.clickhouse.serve.port, 'TIDEMARK_CLICKHOUSE_HTTP_PORT', owner, 'fail'));
  const nats = await checkNats(config);
  results.push(nats.result);
  results.push(await checkClickHouse(config, owner));
  try {
    results.push(await checkClock(nats.nc));
  } finally {
    await nats.nc?.close();
  }
  return results;
}
