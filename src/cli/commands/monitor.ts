import type { ClickHouseClient } from '@clickhouse/client';
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { migrate, migrationOptions } from '../../clickhouse/migrations.ts';
import type { Config } from '../../core/config.ts';
import { createLogger } from '../../core/logger.ts';
import { metricsRegistry } from '../../core/metrics.ts';
import { serveMonitorHttp } from '../../monitor/http.ts';
import { startMonitor, type Monitor } from '../../monitor/monitor.ts';
import { openClickHouseForTool } from '../clickhouse-access.ts';
import { readiness } from '../roles.ts';
import { configFor, onShutdown, openNats, type NatsRuntime } from '../runtime.ts';

/** The monitor role on an open NATS runtime and ClickHouse client: migrates, then starts (what `tidemark up` calls too). */
export async function startMonitorRole(options: { config: Config; nats: NatsRuntime; clickhouse: ClickHouseClient; logger: Logger }): Promise<Monitor> {
  const { config, nats, clickhouse, logger } = options;
  const migrated = await migrate(clickhouse, config.clickhouse.database, migrationOptions(config));
  if (migrated.applied.length) logger.info({ applied: migrated.applied }, 'ClickHouse schema migrated');
  return startMonitor({ config, js: nats.js, clickhouse, logger });
}

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
      const monitor = await startMonitorRole({ config, nats, clickhouse: clickhouse.client, logger });
      const http = await serveMonitorHttp({
        host: config.http.host,
        port: opts.httpPort === undefined ? config.http.port : Number(opts.httpPort),
        registry: metricsRegistry,
        ready: readiness(nats, clickhouse.client),
        browser: config.browser,
        logger,
      });
      // the handler first: a SIGTERM sent as soon as the line below is read must find it
      onShutdown(logger, async () => {
        await http.close();
        await monitor.stop();
        await nats.close();
        await clickhouse.close();
      });
      logger.info({ clickhouse: clickhouse.via, http: http.url, instance: monitor.instance }, 'monitor running');
    });
}
