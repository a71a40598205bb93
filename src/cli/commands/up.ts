import type { Command } from 'commander';
import { clickHouseTarget, openClickHouse } from '../../clickhouse/client.ts';
import { serveEmbeddedClickHouse } from '../../clickhouse/http-server/server.ts';
import { createLogger } from '../../core/logger.ts';
import { readiness, startGatewayRole, startProcessorRole } from '../roles.ts';
import { startMonitorRole } from './monitor.ts';
import { startReconcileStreaming } from '../../reconcile/streaming.ts';
import { startSagaRole } from '../../saga/role.ts';
import { configFor, onShutdown, openNats } from '../runtime.ts';

export function register(program: Command): void {
  program
    .command('up')
    .description('run every role in one process on embedded defaults (nats-server from PATH, chDB in process)')
    .action(async (_opts, command: Command) => {
      const config = await configFor(command);
      const logger = createLogger('up');
      const nats = await openNats(config, logger, { embedded: true, name: 'tidemark-up' });
      const clickhouse = openClickHouse(config);
      const { serve } = config.clickhouse;
      const served = await serveEmbeddedClickHouse(config, { host: serve.host, port: serve.port, ...(serve.users.length > 0 ? { users: serve.users } : {}) });
      const processor = await startProcessorRole({ config, nats, clickhouse, logger });
      const monitor = await startMonitorRole({ config, nats, clickhouse, logger });
      const reconcile = await startReconcileStreaming({ config, js: nats.js, jsm: nats.jsm, clickhouse, logger: createLogger('reconcile') });
      const sagas = await startSagaRole({ config, js: nats.js, jsm: nats.jsm, clickhouse, logger: createLogger('saga') });
      const gateway = await startGatewayRole({ config, nats, logger, ready: readiness(nats, clickhouse) });
      const target = clickHouseTarget(config);
      process.stdout.write(
        [
          'Tidemark is up',
          `  NATS        ${nats.url}${nats.embedded ? ` (embedded, store under ${config.dataDir}/nats)` : ''}`,
          `  HTTP        ${gateway.httpUrl}  (POST /v1/events, /metrics, /healthz, /readyz)`,
          `  ClickHouse  ${target.kind === 'embedded' ? `embedded chDB, data in ${target.path}` : target.url} (database ${config.clickhouse.database})`,
          ...(served ? [`  SQL         ${served.url}  (ClickHouse HTTP interface; other processes: CLICKHOUSE_URL=${served.url})`] : []),
          `Publish: nats pub -s ${nats.url} ingest.store-17.sale '{"id":"s-1","occurredAt":"${new Date().toISOString()}","data":{"amount":"129.90"}}'`,
          '',
        ].join('\n'),
      );
      onShutdown(logger, async () => {
        await gateway.stop();
        await processor.stop();
        await monitor.stop();
        await reconcile.stop();
        await sagas.stop();
        await nats.close();
        await served?.close();
        await clickhouse.close();
      });
    });
}
