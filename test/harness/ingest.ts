import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import type { Config } from '../../src/core/config.ts';
import { startNatsGateway, type NatsGateway } from '../../src/ingest/nats-gateway.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { startTestNats, type TestNats } from './nats.ts';
import { waitFor } from './streams.ts';

export type TestIngest = {
  server: TestNats;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  gateway: NatsGateway;
  dispose: () => Promise<void>;
};

/** The ingest side most integration tests stand on: a real nats-server with Tidemark's topology and a NATS gateway in process. */
export async function startTestIngest(config: Config): Promise<TestIngest> {
  const server = await startTestNats();
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await ensureTopology(jsm, config);
  const gateway = await startNatsGateway({ js, nc, config, logger: pino({ level: 'silent' }) });
  return {
    server,
    nc,
    js,
    jsm,
    gateway,
    dispose: async () => {
      await gateway.stop();
      await nc.close();
      await server.dispose();
    },
  };
}

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
