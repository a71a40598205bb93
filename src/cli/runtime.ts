import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { loadConfig, resolveConfigPath, type Config } from '../core/config.ts';
import { connectNats } from '../nats/connect.ts';
import { startNatsServer, type EmbeddedNats } from '../nats/embedded-server.ts';
import { retryTransient } from '../nats/retry.ts';
import { ensureTopology, type TopologyChange } from '../nats/topology.ts';

/** Every command takes `--config`; the file is resolved per SPEC §9 and validated before anything starts. */
export async function configFor(command: Command): Promise<Config> {
  const opts = command.optsWithGlobals<{ config?: string }>();
  return loadConfig(resolveConfigPath(opts.config, process.env), process.env);
}

/** Where a role finds NATS when NATS_URL is unset: the embedded server that `tidemark up` starts. */
export const defaultNatsUrl = (config: Config): string => `nats://${config.nats.embedded.host}:${config.nats.embedded.port}`;

export type NatsRuntime = {
  url: string;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  embedded?: EmbeddedNats;
  changes: TopologyChange[];
  close: () => Promise<void>;
};

/**
 * Connects to NATS; with `embedded` and no NATS_URL it first starts nats-server with
 * its store under the data directory. The topology is ensured on every start, so any
 * role can come up first.
 */
export async function openNats(config: Config, logger: Logger, options: { embedded: boolean; name: string }): Promise<NatsRuntime> {
  let embedded: EmbeddedNats | undefined;
  let url = config.nats.url ?? defaultNatsUrl(config);
  if (!config.nats.url && options.embedded) {
    const storeDir = resolve(join(config.dataDir, 'nats'));
    embedded = await startNatsServer({ storeDir, host: config.nats.embedded.host, port: config.nats.embedded.port });
    url = embedded.url;
    logger.info({ url, storeDir }, 'embedded nats-server started');
  }
  const nc = await connectNats(config, url, options.name);
  const jsm = await jetstreamManager(nc);
  // a role started while the cluster elects a leader waits for it rather than exiting
  const changes = await retryTransient(() => ensureTopology(jsm, config));
  for (const change of changes.filter((c) => c.action !== 'unchanged')) logger.info(change, 'topology');
  return {
    url,
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
