import type { Command } from 'commander';
import { createLogger } from '../../core/logger.ts';
import { openClickHouseForTool } from '../clickhouse-access.ts';
import { startRoles } from '../../core/role.ts';
import { processorRole } from '../roles.ts';
import { configFor, onShutdown, openNats } from '../runtime.ts';

export function register(program: Command): void {
  program
    .command('processor')
    .description('run a processor: EVENTS → ClickHouse (events, realtime windows, daily revisions); start more for more throughput')
    .action(async (_opts, command: Command) => {
      const config = await configFor(command);
      const logger = createLogger('processor');
      const nats = await openNats(config, logger, { embedded: false, name: 'tidemark-processor' });
      const clickhouse = await openClickHouseForTool(config);
      const roles = await startRoles([processorRole({ config, nats, clickhouse: clickhouse.client, logger })], logger);
      // the handler first: a SIGTERM sent as soon as the line below is read must find it
      onShutdown(logger, async () => {
        await roles.stop();
        await nats.close();
        await clickhouse.close();
      });
      logger.info({ clickhouse: clickhouse.via }, 'processor running');
    });
}
