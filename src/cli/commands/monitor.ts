import type { Command } from 'commander';
import { createLogger } from '../../core/logger.ts';
import { metricsRegistry } from '../../core/metrics.ts';
import { startRoles } from '../../core/role.ts';
import { serveMonitorHttp } from '../../monitor/http.ts';
import { openClickHouseForTool } from '../clickhouse-access.ts';
import { monitorRole } from '../roles.ts';
import { configFor, onShutdown, openNats } from '../runtime.ts';

export function register(program: Command): void {
  program
    .command('monitor')
    .description('run the delay-SLA monitor: EVENTS + the clock → ALERTS (alerts.<kind>.<source>), the alerts table and webhooks; instances share the work')
    .option('--http-port <port>', 'port for /metrics, /healthz and /readyz (default: TIDEMARK_HTTP_PORT or http.port; 0 picks a free one)')
    .action(async (opts: { httpPort?: string }, command: Command) => {
      const config = await configFor(command);
      const logger = createLogger('monitor');
      const nats = await openNats(config, logger, { embedded: false, name: 'tidemark-monitor' });
      const clickhouse = await openClickHouseForTool(config);
      let instance: string | undefined;
      const roles = await startRoles([monitorRole({ config, nats, clickhouse: clickhouse.client, logger, started: (id) => (instance = id) })], logger);
      const http = await serveMonitorHttp({
        host: config.http.host,
        port: opts.httpPort === undefined ? config.http.port : Number(opts.httpPort),
        registry: metricsRegistry,
        ready: roles.ready,
        browser: config.browser,
        logger,
      });
      // the handler first: a SIGTERM sent as soon as the line below is read must find it
      onShutdown(logger, async () => {
        await http.close();
        await roles.stop();
        await nats.close();
        await clickhouse.close();
      });
      logger.info({ clickhouse: clickhouse.via, http: http.url, instance }, 'monitor running');
    });
}
