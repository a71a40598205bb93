import { InvalidArgumentError, type Command } from 'commander';
import { clickHouseTarget, openClickHouse } from '../../clickhouse/client.ts';
import { serveEmbeddedClickHouse } from '../../clickhouse/http-server/server.ts';
import { createLogger } from '../../core/logger.ts';
import { redact } from '../../core/secrets.ts';
import { startReconcileStreaming } from '../../reconcile/streaming.ts';
import { startSagaRole } from '../../saga/role.ts';
import { readiness, startGatewayRole, startProcessorRole, type RunningRole } from '../roles.ts';
import { configFor, onShutdown, openNats } from '../runtime.ts';
import { startMonitorRole } from './monitor.ts';

const ROLES = ['processor', 'monitor', 'reconcile', 'saga', 'gateway'] as const;
type Role = (typeof ROLES)[number];

function parseRoles(value: string): Role[] {
  const roles = value.split(',').map((r) => r.trim()).filter(Boolean);
  const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (unknown.length) throw new InvalidArgumentError(`unknown role ${unknown.join(', ')} (roles: ${ROLES.join(', ')})`);
  return roles as Role[];
}

export function register(program: Command): void {
  program
    .command('up')
    .description('run the roles in one process on embedded defaults (nats-server from PATH, chDB in process, served over HTTP on :8123)')
    .option('--roles <list>', `comma-separated roles to run (default: all of ${ROLES.join(', ')})`, parseRoles)
    .action(async (opts: { roles?: Role[] }, command: Command) => {
      const config = await configFor(command);
      const wanted = new Set<Role>(opts.roles ?? ROLES);
      const logger = createLogger('up');
      const nats = await openNats(config, logger, { embedded: true, name: 'tidemark-up' });
      const clickhouse = openClickHouse(config);
      const { serve } = config.clickhouse;
      const served = await serveEmbeddedClickHouse(config, { host: serve.host, port: serve.port });
      // the gateway starts last, so input is taken only once everything downstream runs
      const running: RunningRole[] = [];
      let httpUrl: string | undefined;
      for (const role of ROLES.filter((r) => wanted.has(r))) {
        const roleLogger = createLogger(role);
        switch (role) {
          case 'processor':
            running.push(await startProcessorRole({ config, nats, clickhouse, logger: roleLogger }));
            break;
          case 'monitor':
            running.push(await startMonitorRole({ config, nats, clickhouse, logger: roleLogger }));
            break;
          case 'reconcile':
            running.push(await startReconcileStreaming({ config, js: nats.js, jsm: nats.jsm, clickhouse, logger: roleLogger }));
            break;
          case 'saga':
            running.push(await startSagaRole({ config, nc: nats.nc, js: nats.js, jsm: nats.jsm, clickhouse, logger: roleLogger }));
            break;
          case 'gateway': {
            const gateway = await startGatewayRole({ config, nats, logger: roleLogger, ready: readiness(nats, clickhouse) });
            httpUrl = gateway.httpUrl;
            running.push(gateway);
            break;
          }
        }
      }
      const target = clickHouseTarget(config);
      // NATS_URL and CLICKHOUSE_URL may carry user:password@: the banner shows neither.
      process.stdout.write(redact(
        [
          `Tidemark is up: ${[...wanted].join(', ') || 'no roles'}`,
          `  NATS        ${nats.url}${nats.embedded ? ` (embedded, store under ${config.dataDir}/nats)` : ''}`,
          ...(httpUrl ? [`  HTTP        ${httpUrl}  (POST /v1/events, /metrics, /healthz, /readyz)`] : []),
          `  ClickHouse  ${target.kind === 'embedded' ? `embedded chDB, data in ${target.path}` : target.url} (database ${config.clickhouse.database})`,
          ...(served ? [`  SQL         ${served.url}  (ClickHouse HTTP interface; other processes: CLICKHOUSE_URL=${served.url})`] : []),
          `Publish: nats pub -s ${nats.url} ingest.store-17.sale '{"id":"s-1","occurredAt":"${new Date().toISOString()}","data":{"amount":"129.90"}}'`,
          '',
        ].join('\n'),
      ));
      onShutdown(logger, async () => {
        for (const role of running.reverse()) await role.stop();
        await nats.close();
        await served?.close();
        await clickhouse.close();
      });
    });
}
