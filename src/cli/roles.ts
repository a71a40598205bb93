import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from 'pino';
import { migrate, migrationOptions } from '../clickhouse/migrations.ts';
import type { Config } from '../core/config.ts';
import { startHttpGateway } from '../ingest/http/server.ts';
import { startNatsGateway } from '../ingest/nats-gateway.ts';
import { startProcessor } from '../processors/processor.ts';
import type { UiClickHouse } from '../ui/api.ts';
import type { NatsRuntime } from './runtime.ts';

export type Readiness = () => Promise<{ ready: boolean; reason?: string }>;
export type RunningRole = { stop: () => Promise<void> };

/** The gateway role: the INGEST consumer plus the HTTP front door (which also serves /metrics, health and the page under /ui). */
export async function startGatewayRole(options: { config: Config; nats: NatsRuntime; logger: Logger; ready: Readiness; ui: UiClickHouse }): Promise<RunningRole & { httpUrl: string }> {
  const { config, nats, logger } = options;
  const gateway = await startNatsGateway({ js: nats.js, nc: nats.nc, config, logger });
  const http = await startHttpGateway({ config, js: nats.js, nc: nats.nc, logger, ready: options.ready, ui: options.ui });
  logger.info({ url: http.url }, 'HTTP gateway listening');
  return {
    httpUrl: http.url,
    stop: async () => {
      await http.close();
      await gateway.stop();
    },
  };
}

/** The processor role: EVENTS → ClickHouse events, realtime windows and daily revisions. */
export async function startProcessorRole(options: { config: Config; nats: NatsRuntime; clickhouse: ClickHouseClient; logger: Logger }): Promise<RunningRole> {
  const { config, nats, clickhouse, logger } = options;
  const migrated = await migrate(clickhouse, config.clickhouse.database, migrationOptions(config));
  if (migrated.applied.length) logger.info({ applied: migrated.applied }, 'ClickHouse schema migrated');
  const processor = await startProcessor({ config, js: nats.js, clickhouse, logger });
  return { stop: processor.stop };
}

/** Ready when a NATS server answers and ClickHouse answers a ping. */
export function readiness(nats: NatsRuntime, clickhouse: ClickHouseClient): Readiness {
  return async () => {
    if (nats.nc.isClosed()) return { ready: false, reason: 'NATS connection closed' };
    // rtt() fails at once while the client is between servers, where a flush would wait for the reconnect
    const rtt = await nats.nc.rtt().then(() => undefined, (err: unknown) => err as Error);
    if (rtt) return { ready: false, reason: `no NATS server answers: ${rtt.message}` };
    const ping = await clickhouse.ping();
    return ping.success ? { ready: true } : { ready: false, reason: `ClickHouse: ${String(ping.error)}` };
  };
}
