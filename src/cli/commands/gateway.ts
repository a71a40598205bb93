import type { Command } from 'commander';
import { createLogger } from '../../core/logger.ts';
import { clickHouseForPage } from '../clickhouse-access.ts';
import { startRoles } from '../../core/role.ts';
import { gatewayRole } from '../roles.ts';
import { configFor, onShutdown, openNats } from '../runtime.ts';

export function register(program: Command): void {
  program
    .command('gateway')
    .description('run the ingest gateway: INGEST stream and HTTP POST /v1/events → EVENTS (invalid input → DLQ); the page under /ui (figures from CLICKHOUSE_URL)')
    .action(async (_opts, command: Command) => {
      const config = await configFor(command);
      const logger = createLogger('gateway');
      const nats = await openNats(config, logger, { embedded: false, name: 'tidemark-gateway' });
      const ui = clickHouseForPage(config);
      let httpUrl: string | undefined;
      const roles = await startRoles([gatewayRole({ config, nats, logger, ready: async () => ({ ready: true }), ui, listening: (url) => (httpUrl = url) })], logger);
      // the handler first: a SIGTERM sent as soon as the line below is read must find it
      onShutdown(logger, async () => {
        await roles.stop();
        await nats.close();
        if ('client' in ui) await ui.client.close();
      });
      logger.info({ http: httpUrl }, 'gateway running');
    });
}
