import type { Command } from 'commander';
import { migrate, migrationOptions } from '../../clickhouse/migrations.ts';
import { createLogger } from '../../core/logger.ts';
import { redactUserInfo } from '../../core/secrets.ts';
import { ensureSagaTopology } from '../../saga/topology.ts';
import { openClickHouseForTool } from '../clickhouse-access.ts';
import { acquireDataDir } from '../data-dir-lock.ts';
import { natsGreeting } from '../ports.ts';
import { configFor, natsTarget, openNats } from '../runtime.ts';
import { retryTransient } from '../../nats/retry.ts';

/**
 * With no NATS_URL: the server of the `tidemark up` owning the data directory, else a
 * JetStream server already on the embedded port, else an embedded server started just for
 * this (never a server without JetStream that happens to hold the port).
 */
async function needsOwnServer(config: Parameters<typeof natsTarget>[0]): Promise<boolean> {
  const target = natsTarget(config);
  if (target.from !== 'default') return false;
  const greeting = await natsGreeting(config.nats.embedded.host, config.nats.embedded.port);
  return greeting?.jetstream !== true;
}

export function register(program: Command): void {
  program
    .command('init')
    .description('create or update the JetStream streams, durable consumers and ClickHouse tables (idempotent)')
    .action(async (_opts, command: Command) => {
      const config = await configFor(command);
      const logger = createLogger('init');
      const embedded = await needsOwnServer(config);
      if (embedded) acquireDataDir(config.dataDir, 'init');
      const nats = await openNats(config, logger, { embedded, name: 'tidemark-init' });
      const clickhouse = await openClickHouseForTool(config);
      try {
        const changes = [...nats.changes, ...(await retryTransient(() => ensureSagaTopology(nats.js, nats.jsm, config)))];
        for (const change of changes) process.stdout.write(`${change.kind.padEnd(9)} ${change.name.padEnd(28)} ${change.action}${change.detail ? ` (${change.detail})` : ''}\n`);
        const migrated = await migrate(clickhouse.client, config.clickhouse.database, migrationOptions(config));
        process.stdout.write(`tables    ${config.clickhouse.database} (${clickhouse.via})   schema version ${migrated.current}${migrated.applied.length ? `, applied ${migrated.applied.join(', ')}` : ', unchanged'}\n`);
        process.stdout.write(`topology ready on ${redactUserInfo(nats.url)}\n`);
      } finally {
        await clickhouse.close();
        await nats.close();
      }
    });
}
