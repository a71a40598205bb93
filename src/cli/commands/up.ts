import { InvalidArgumentError, type Command } from 'commander';
import type { ClickHouseClient } from '@clickhouse/client';
import { clickHouseTarget, openClickHouse } from '../../clickhouse/client.ts';
import { serveEmbeddedClickHouse, type EmbeddedClickHouseServer } from '../../clickhouse/http-server/server.ts';
import type { Config } from '../../core/config.ts';
import { ErrorCodes, TidemarkError } from '../../core/errors.ts';
import { createLogger } from '../../core/logger.ts';
import { redact } from '../../core/secrets.ts';
import { clickHouseUnreachable, reachableClickHouse } from '../clickhouse-access.ts';
import { acquireDataDir } from '../data-dir-lock.ts';
import { describeHolder, portHolder } from '../ports.ts';
import { startRoles, type RoleStarter } from '../../core/role.ts';
import { gatewayRole, monitorRole, processorRole, readiness, reconcileRole, ROLE_NAMES as ROLES, sagaRole, type RoleName as Role } from '../roles.ts';
import { configFor, onShutdown, openNats, type NatsRuntime } from '../runtime.ts';

function parseRoles(value: string): Role[] {
  const roles = value.split(',').map((r) => r.trim()).filter(Boolean);
  const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (unknown.length) throw new InvalidArgumentError(`unknown role ${unknown.join(', ')} (roles: ${ROLES.join(', ')})`);
  return roles as Role[];
}

/** The listeners `up` will open, checked before anything starts so a taken port costs one line, not a half-started process. */
async function assertPortsFree(config: Config, gateway: boolean): Promise<void> {
  const wanted: Array<{ what: string; host: string; port: number; setting: string }> = [];
  if (gateway) wanted.push({ what: 'the HTTP gateway', host: config.http.host, port: config.http.port, setting: 'TIDEMARK_HTTP_PORT' });
  if (!config.clickhouse.url) wanted.push({ what: 'the embedded ClickHouse HTTP endpoint', host: config.clickhouse.serve.host, port: config.clickhouse.serve.port, setting: 'TIDEMARK_CLICKHOUSE_HTTP_PORT' });
  for (const { what, host, port, setting } of wanted.filter((w) => w.port !== 0)) {
    const holder = await portHolder(host, port);
    if (holder) throw new TidemarkError(ErrorCodes.PORT_IN_USE, `port ${port} on ${host} (${what}) is in use by ${describeHolder(holder)}: stop it, or set ${setting} to another port (0 = any free port)`);
  }
}

/** ClickHouse for the process that owns it: chDB on the data directory, or the server at CLICKHOUSE_URL once it answers. */
async function ownClickHouse(config: Config): Promise<ClickHouseClient> {
  const { url, user, password } = config.clickhouse;
  if (url) await (await reachableClickHouse(url, { user, password }, clickHouseUnreachable(url))).close();
  return openClickHouse(config);
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
      // one owner per data directory: a second `up` here stops at this line, naming the first
      const lock = acquireDataDir(config.dataDir, 'up');
      await assertPortsFree(config, wanted.has('gateway'));
      let nats: NatsRuntime | undefined;
      let clickhouse: ClickHouseClient | undefined;
      let served: EmbeddedClickHouseServer | undefined;
      try {
        nats = await openNats(config, logger, { embedded: true, name: 'tidemark-up' });
        clickhouse = await ownClickHouse(config);
        const { serve } = config.clickhouse;
        served = await serveEmbeddedClickHouse(config, { host: serve.host, port: serve.port });
      } catch (err) {
        await nats?.close();
        await clickhouse?.close();
        throw err;
      }
      await runRoles({ config, wanted, logger, nats, clickhouse, served, lock });
    });
}

type Started = {
  config: Config;
  wanted: Set<Role>;
  logger: ReturnType<typeof createLogger>;
  nats: NatsRuntime;
  clickhouse: ClickHouseClient;
  served: EmbeddedClickHouseServer | undefined;
  lock: ReturnType<typeof acquireDataDir>;
};

async function runRoles({ config, wanted, logger, nats, clickhouse, served, lock }: Started): Promise<void> {
  const closeAll = async () => {
    await nats.close();
    await served?.close();
    await clickhouse.close();
    lock.release();
  };
  let httpUrl: string | undefined;
  const starters: Record<Role, () => RoleStarter> = {
    processor: () => processorRole({ config, nats, clickhouse, logger: createLogger('processor') }),
    monitor: () => monitorRole({ config, nats, clickhouse, logger: createLogger('monitor') }),
    reconcile: () => reconcileRole({ config, nats, clickhouse, logger: createLogger('reconcile') }),
    saga: () => sagaRole({ config, nats, clickhouse, logger: createLogger('saga') }),
    gateway: () => gatewayRole({ config, nats, logger: createLogger('gateway'), ready: readiness(nats, clickhouse), ui: { client: clickhouse }, listening: (url) => (httpUrl = url) }),
  };
  const roles = await startRoles(ROLES.filter((r) => wanted.has(r)).map((r) => starters[r]()), logger).catch(async (err: unknown) => {
    await closeAll().catch(() => undefined);
    throw err;
  });
  const stopAll = async () => {
    try {
      await roles.stop();
    } finally {
      await closeAll();
    }
  };
  // other commands on this data directory read where everything is, even on ports that moved
  lock.update({ nats: nats.url, ...(served ? { sql: served.url } : {}), ...(httpUrl ? { http: httpUrl } : {}) });
  const target = clickHouseTarget(config);
  const moved = nats.embedded && nats.embedded.port !== config.nats.embedded.port && config.nats.embedded.port !== 0;
  // NATS_URL and CLICKHOUSE_URL may carry user:password@: the banner shows neither.
  process.stdout.write(redact(
    [
      `Tidemark is up: ${[...wanted].join(', ') || 'no roles'}`,
      `  NATS        ${nats.url}${nats.embedded ? ` (embedded, store under ${config.dataDir}/nats)` : ''}`,
      ...(moved ? [`              port ${config.nats.embedded.port} is someone else's; commands run in this directory find this one, elsewhere set NATS_URL=${nats.url}`] : []),
      ...(httpUrl ? [`  HTTP        ${httpUrl}  (POST /v1/events, /metrics, /healthz, /readyz)`, `  Page        ${httpUrl}/ui  (revision timelines, realtime windows, alerts)`] : []),
      `  ClickHouse  ${target.kind === 'embedded' ? `embedded chDB, data in ${target.path}` : target.url} (database ${config.clickhouse.database})`,
      ...(served ? [`  SQL         ${served.url}  (ClickHouse HTTP interface; other processes: CLICKHOUSE_URL=${served.url})`] : []),
      `Publish: nats pub -s ${nats.url} ingest.store-17.sale '{"id":"s-1","occurredAt":"${new Date().toISOString()}","data":{"amount":"129.90"}}'`,
      '',
    ].join('\n'),
  ));
  onShutdown(logger, stopAll);
}
