import type { JetStreamManager } from '@nats-io/jetstream';
import pino, { type Logger } from 'pino';
import type { Config } from '../../src/core/config.ts';
import { startNatsGateway, type NatsGateway } from '../../src/ingest/nats-gateway.ts';
import { useFixture } from './fixture.ts';
import { startConnectedNats, type ConnectedNats } from './nats-client.ts';
import { waitFor } from './streams.ts';

export type TestIngest = ConnectedNats & { gateway: NatsGateway };

/** The ingest side most integration tests stand on: a real nats-server with Tidemark's topology and a NATS gateway in process. */
export async function startTestIngest(config: Config, logger: Logger = pino({ level: 'silent' })): Promise<TestIngest> {
  const nats = await startConnectedNats(config);
  const gateway = await startNatsGateway({ js: nats.js, nc: nats.nc, config, logger });
  return {
    ...nats,
    gateway,
    dispose: async () => {
      await gateway.stop();
      await nats.dispose();
    },
  };
}

/** startTestIngest for the whole test file (see useFixture). */
export const useTestIngest = (config: Config): TestIngest => useFixture(() => startTestIngest(config));

/** The gateway and the processor have acknowledged everything on INGEST and EVENTS: each acks only after what a message caused is durable. */
export async function pipelineAcked(jsm: JetStreamManager): Promise<boolean> {
  const [raw, gateway, events, stored] = await Promise.all([
    jsm.streams.info('INGEST'),
    jsm.consumers.info('INGEST', 'gateway'),
    jsm.streams.info('EVENTS'),
    jsm.consumers.info('EVENTS', 'processor'),
  ]);
  return gateway.ack_floor.stream_seq === raw.state.last_seq && stored.ack_floor.stream_seq === events.state.last_seq;
}

export const pipelineDrained = (jsm: JetStreamManager) => waitFor(() => pipelineAcked(jsm), 60_000, 'the gateway and the processor to ack everything');
