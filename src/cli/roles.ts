import type { Logger } from 'pino';
import type { Config } from '../core/config.ts';
import { startHttpGateway } from '../ingest/http/server.ts';
import { startNatsGateway } from '../ingest/nats-gateway.ts';
import type { NatsRuntime } from './runtime.ts';

export type Readiness = () => Promise<{ ready: boolean; reason?: string }>;
export type RunningRole = { stop: () => Promise<void> };

/** The gateway role: the INGEST consumer plus the HTTP front door (which also serves /metrics and health). */
export async function startGatewayRole(options: { config: Config; nats: NatsRuntime; logger: Logger; ready: Readiness }): Promise<RunningRole & { httpUrl: string }> {
  const { config, nats, logger } = options;
  const gateway = await startNatsGateway({ js: nats.js, config, logger });
  const http = await startHttpGateway({ config, js: nats.js, nc: nats.nc, logger, ready: options.ready });
  logger.info({ url: http.url }, 'HTTP gateway listening');
  return {
    httpUrl: http.url,
    stop: async () => {
      await http.close();
      await gateway.stop();
    },
  };
}
