import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { loadConfig, resolveConfigPath, type Config } from '../core/config.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { connectWhenReachable } from '../nats/connect.ts';
import type { EmbeddedNats } from '../nats/embedded-server.ts';
import { retryTransient } from '../nats/retry.ts';
import { ensureTopology, type TopologyChange } from '../nats/topology.ts';
import { readDataDirOwner } from './data-dir-lock.ts';
import { startOwnNats } from './own-nats.ts';

/** Every command takes `--config`; the file is resolved per SPEC §9 and validated before anything starts. */
export async function configFor(command: Command): Promise<Config> {
  const opts = command.optsWithGlobals<{ config?: string }>();
  return loadConfig(resolveConfigPath(opts.config, process.env), process.env);
}

/** Where `tidemark up` starts nats-server when NATS_URL is unset (the port may move if another server holds it). */
export const defaultNatsUrl = (config: Config): string => `nats://${config.nats.embedded.host}:${config.nats.embedded.port}`;

export type NatsTarget = { url: string; from: 'NATS_URL' | 'owner' | 'default' };

/** NATS_URL, else the server of the `tidemark up` that owns this data directory, else the embedded default port. */
export function natsTarget(config: Config): NatsTarget {
  if (config.nats.url) return { url: config.nats.url, from: 'NATS_URL' };
  const owner = readDataDirOwner(config.dataDir);
  if (owner?.nats) return { url: owner.nats, from: 'owner' };
  return { url: defaultNatsUrl(config), from: 'default' };
}

export type NatsRuntime = {
  url: string;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  embedded?: EmbeddedNats;
  changes: TopologyChange[];
  close: () => Promise<void>;
};

/** A line for the person at the terminal, whatever LOG_LEVEL says (logs go to stdout). */
export const notice = (line: string): void => {
  process.stderr.write(`tidemark: ${line}\n`);
};

function jetStreamDisabled(target: NatsTarget, cause?: unknown): TidemarkError {
  const message = target.from === 'NATS_URL'
    ? `JetStream is not enabled on the NATS server at ${target.url} (NATS_URL): enable it (nats-server -js, or a jetstream {} block in its configuration), or unset NATS_URL so that \`tidemark up\` runs its own`
    : `the NATS server at ${target.url} has JetStream disabled, so it is not one that \`tidemark up\` started (the system nats-server service?): run \`tidemark up\` in this directory (it moves to a free port and tells the other commands here), or set NATS_URL to a JetStream-enabled server`;
  return new TidemarkError(ErrorCodes.JETSTREAM_DISABLED, message, cause === undefined ? undefined : { cause });
}

/**
 * Connects to NATS; with `embedded` and no NATS_URL it first starts its own nats-server
 * (store under the data directory), never using another server found on the port. The
 * topology is ensured on every start, so any role can come up first.
 */
export async function openNats(config: Config, logger: Logger, options: { embedded: boolean; name: string }): Promise<NatsRuntime> {
  let embedded: EmbeddedNats | undefined;
  let target = natsTarget(config);
  if (!config.nats.url && options.embedded) {
    embedded = await startOwnNats(config, notice);
    target = { url: embedded.url, from: 'owner' };
    logger.info({ url: embedded.url, storeDir: resolve(join(config.dataDir, 'nats')) }, 'embedded nats-server started');
  }
  let nc: NatsConnection;
  try {
    nc = await connectWhenReachable(config, target.url, options.name, (reason) => {
      const ask = target.from === 'NATS_URL' ? 'is the server up? check NATS_URL' : 'is `tidemark up` running? else set NATS_URL to your NATS server';
      notice(`cannot reach NATS at ${target.url} (${reason}); ${ask} — retrying`);
    });
  } catch (err) {
    await embedded?.stop();
    throw err;
  }
  try {
    if (embedded?.serverId && nc.info?.server_id !== embedded.serverId) {
      throw new TidemarkError(ErrorCodes.NATS_SERVER_FAILED, `${target.url} answered as server ${nc.info?.server_id ?? '?'}, not as the nats-server we started (${embedded.serverId}): another server took the port; try again`);
    }
    if (nc.info?.jetstream !== true) throw jetStreamDisabled(target);
    let jsm: JetStreamManager;
    try {
      jsm = await jetstreamManager(nc);
    } catch (err) {
      throw (err as Error).name === 'JetStreamNotEnabled' ? jetStreamDisabled(target, err) : err;
    }
    // a role started while the cluster elects a leader waits for it rather than exiting
    const changes = await retryTransient(() => ensureTopology(jsm, config));
    for (const change of changes.filter((c) => c.action !== 'unchanged')) logger.info(change, 'topology');
    return {
      url: target.url,
      nc,
      js: jetstream(nc),
      jsm,
      changes,
      ...(embedded ? { embedded } : {}),
      close: async () => {
        await nc.drain().catch(() => undefined);
        await embedded?.stop();
      },
    };
  } catch (err) {
    await nc.close().catch(() => undefined);
    await embedded?.stop();
    throw err;
  }
}

/**
 * Runs `stop` once on SIGINT/SIGTERM and exits 0 when it finishes (1 if it throws);
 * a second signal forces the exit.
 */
export function onShutdown(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down: draining consumers and flushing sinks');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
