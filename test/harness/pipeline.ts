import pino, { type Logger } from 'pino';
import type { Config } from '../../src/core/config.ts';
import { createRegistry } from '../../src/core/metrics.ts';
import { startHttpGateway, type HttpGateway } from '../../src/ingest/http/server.ts';
import { startProcessor, type Processor } from '../../src/processors/processor.ts';
import { closeTestClickHouse, openTestClickHouse, type TestClickHouse } from './clickhouse.ts';
import { assemble, useFixture } from './fixture.ts';
import { startTestIngest, type TestIngest } from './ingest.ts';

export type TestPipeline = TestIngest & { ch: TestClickHouse; config: Config; http: HttpGateway; processor: Processor };

const silent = pino({ level: 'silent' });

/**
 * The pipeline in process for the whole test file (see useFixture): the file's database, a
 * nats-server with the NATS gateway (startTestIngest) for the config `configFor` builds around
 * that database, the HTTP gateway on it, and a processor writing to the database.
 */
export function useTestPipeline(configFor: (database: string) => Config, options: { revisorIntervalMs?: number; logger?: Logger } = {}): TestPipeline {
  const { logger = silent, revisorIntervalMs } = options;
  return useFixture(() => assemble(async (defer) => {
    defer(() => closeTestClickHouse());
    const ch = await openTestClickHouse();
    defer(() => ch.dispose());
    const config = configFor(ch.db);
    const ingest = await startTestIngest(config);
    defer(() => ingest.dispose());
    const http = await startHttpGateway({ config, js: ingest.js, nc: ingest.nc, logger, registry: createRegistry() });
    defer(() => http.close());
    const started = await startProcessor({ config, js: ingest.js, clickhouse: ch.client, logger, revisorIntervalMs });
    defer(() => started.stop());
    return { ...ingest, ch, config, http, processor: started };
  }));
}
