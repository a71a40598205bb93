import type { Command } from 'commander';
import { connect } from '@nats-io/transport-node';
import { migrate } from '../../clickhouse/migrations.ts';
import { createLogger } from '../../core/logger.ts';
import { ensureSagaTopology } from '../../saga/topology.ts';
import { openClickHouseForTool } from '../clickhouse-access.ts';
import { configFor, defaultNatsUrl, openNats } from '../runtime.ts';

const reachable = async (url: string): Promise<boolean> => {
  try {
    await (await connect({ servers: url, timeout: 1_000, reconnect: false })).close();
    return true;
  } catch {
    return false;
  }
};

export function register(program: Command): void {
  program
    .command('init')
    .description('create or update the JetStream streams, durable consumers and ClickHouse tables (idempotent)')
    .action(async (_opts, command: Command) => {
      const config = await configFor(command);
      const logger = createLogger('init');
      // with no NATS_URL and nothing on the embedded port yet, start the embedded server just for this
      const embedded = !config.nats.url && !(await reachable(defaultNatsUrl(config)));
      const nats = await openNats(config, logger, { embedded, name: 'tidemark-init' });
      const clickhouse = await openClickHouseForTool(config);
      try {
        const changes = [...nats.changes, ...(await ensureSagaTopology(nats.js, nats.jsm, config))];
        for (const change of changes) process.stdout.write(`${change.kind.padEnd(9)} ${change.name.padEnd(28)} ${change.action}${change.detail ? ` (${change.detail})` : ''}\n`);
        const migrated = await migrate(clickhouse.client, config.clickhouse.database, config.clickhouse.cluster);
        process.stdout.write(`tables    ${config.clickhouse.database} (${clickhouse.via})   schema version ${migrated.current}${migrated.applied.length ? `, applied ${migrated.applied.join(', ')}` : ', unchanged'}\n`);
        process.stdout.write(`topology ready on ${nats.url}\n`);
      } finally {
        await clickhouse.close();
        await nats.close();
      }
    });
}
