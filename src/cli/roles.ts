import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from 'pino';
import { migrate, migrationOptions } from '../clickhouse/migrations.ts';
import type { Config } from '../core/config.ts';
import type { Readiness, RoleStarter } from '../core/role.ts';
import { startHttpGateway } from '../ingest/http/server.ts';
import { startNatsGateway } from '../ingest/nats-gateway.ts';
import { startMonitor } from '../monitor/monitor.ts';
import { startProcessor } from '../processors/processor.ts';
import { startReconcileStreaming } from '../reconcile/streaming.ts';
import type { SagaDefinition } from '../saga/logic/types.ts';
import { startSagaRole } from '../saga/role.ts';
import type { UiClickHouse } from '../ui/api.ts';
import type { NatsRuntime } from './runtime.ts';

/** Every role, in the order `up` starts them: the gateway last, so input is taken only once everything downstream runs. */
export const ROLE_NAMES = ['processor', 'monitor', 'reconcile', 'saga', 'gateway'] as const;
export type RoleName = (typeof ROLE_NAMES)[number];

export type ReadinessCheck = () => Promise<Readiness>;

async function migrated(config: Config, clickhouse: ClickHouseClient, logger: Logger): Promise<void> {
  const { applied } = await migrate(clickhouse, config.clickhouse.database, migrationOptions(config));
  if (applied.length) logger.info({ applied }, 'ClickHouse schema migrated');
}

/** The gateway role: the INGEST consumer plus the HTTP front door (which also serves /metrics, health and the page under /ui). */
export function gatewayRole(options: { config: Config; nats: NatsRuntime; logger: Logger; ready: ReadinessCheck; ui: UiClickHouse; listening?: (url: string) => void }): RoleStarter {
  return {
    name: 'gateway',
    start: async () => {
      const { config, nats, logger } = options;
      const gateway = await startNatsGateway({ js: nats.js, nc: nats.nc, config, logger });
      const http = await startHttpGateway({ config, js: nats.js, nc: nats.nc, logger, ready: options.ready, ui: options.ui }).catch(async (err: unknown) => {
        await gateway.stop();
        throw err;
      });
      logger.info({ url: http.url }, 'HTTP gateway listening');
      options.listening?.(http.url);
      return {
        ready: options.ready,
        stop: async () => {
          await http.close();
          await gateway.stop();
        },
      };
    },
  };
}

/** The processor role: EVENTS → ClickHouse events, realtime windows and daily revisions. */
export function processorRole(options: { config: Config; nats: NatsRuntime; clickhouse: ClickHouseClient; logger: Logger }): RoleStarter {
  return {
    name: 'processor',
    start: async () => {
      const { config, nats, clickhouse, logger } = options;
      await migrated(config, clickhouse, logger);
      return startProcessor({ config, js: nats.js, clickhouse, logger });
    },
  };
}

/** The delay-SLA monitor role (migrating first: idempotent). */
export function monitorRole(options: { config: Config; nats: NatsRuntime; clickhouse: ClickHouseClient; logger: Logger; started?: (instance: string) => void }): RoleStarter {
  const ready = readiness(options.nats, options.clickhouse);
  return {
    name: 'monitor',
    start: async () => {
      const { config, nats, clickhouse, logger } = options;
      await migrated(config, clickhouse, logger);
      const monitor = await startMonitor({ config, js: nats.js, clickhouse, logger });
      options.started?.(monitor.instance);
      return { ready, stop: monitor.stop };
    },
  };
}

/** Streaming reconciliation of every definition with subject feeds (or of `names`). */
export function reconcileRole(options: { config: Config; nats: NatsRuntime; clickhouse: ClickHouseClient; logger: Logger; names?: readonly string[] }): RoleStarter {
  return {
    name: 'reconcile',
    start: async () => {
      const { config, nats, clickhouse, logger } = options;
      const role = await startReconcileStreaming({ config, js: nats.js, jsm: nats.jsm, clickhouse, logger, ...(options.names ? { names: [...options.names] } : {}) });
      if (role.running.length === 0) logger.warn('no reconciliation with subject feeds on both sides: nothing to stream');
      return role;
    },
  };
}

/** The saga orchestrator role, with the definitions of the configuration and `definitions`; without ClickHouse, no saga tables. */
export function sagaRole(options: { config: Config; nats: NatsRuntime; clickhouse?: ClickHouseClient; logger: Logger; definitions?: readonly SagaDefinition[] }): RoleStarter {
  return {
    name: 'saga',
    start: async () => {
      const { config, nats, clickhouse, logger } = options;
      return startSagaRole({ config, nc: nats.nc, js: nats.js, jsm: nats.jsm, logger, ...(options.definitions ? { definitions: options.definitions } : {}), ...(clickhouse ? { clickhouse } : {}) });
    },
  };
}

/** Ready when a NATS server answers and ClickHouse answers a ping. */
export function readiness(nats: NatsRuntime, clickhouse: ClickHouseClient): ReadinessCheck {
  return async () => {
    if (nats.nc.isClosed()) return { ready: false, reason: 'NATS connection closed' };
    // rtt() fails at once while the client is between servers, where a flush would wait for the reconnect
    const rtt = await nats.nc.rtt().then(() => undefined, (err: unknown) => err as Error);
    if (rtt) return { ready: false, reason: `no NATS server answers: ${rtt.message}` };
    const ping = await clickhouse.ping();
    return ping.success ? { ready: true } : { ready: false, reason: `ClickHouse: ${String(ping.error)}` };
  };
}
