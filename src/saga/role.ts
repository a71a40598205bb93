import type { ClickHouseClient } from '@clickhouse/client';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { migrate, migrationOptions } from '../clickhouse/migrations.ts';
import type { Config } from '../core/config.ts';
import { systemClock, type Clock } from '../core/time.ts';
import { checkDefinitions, defineSaga } from './definition.ts';
import { sagaEffects, type Effects } from './effects.ts';
import type { SagaDefinition } from './logic/types.ts';
import { sagaMetricsFor } from './metrics.ts';
import { startOrchestrator, type Orchestrator } from './orchestrator.ts';
import { startProjector, type Projector } from './projector.ts';
import { createBatchPublisher } from '../nats/batch-publisher.ts';
import { sagaPublish } from './commands.ts';
import type { SagaStore } from './store.ts';
import { ensureSagaTopology, openSagaStore } from './topology.ts';
import { bucketReplicas } from '../nats/buckets.ts';
import { retryTransient } from '../nats/retry.ts';
import { natsAnswers } from '../nats/health.ts';
import { SAGA_LOG_STREAM, SAGA_STREAM } from './subjects.ts';

export type SagaRoleOptions = {
  config: Config;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  logger: Logger;
  /** defined in TypeScript with defineSaga, run alongside those of `sagas.definitions` */
  definitions?: readonly SagaDefinition[];
  /** with a client, `sagas` and `saga_steps` are kept up to date (migrating first: idempotent) */
  clickhouse?: ClickHouseClient;
  clock?: Clock;
  registry?: Registry;
};

export type SagaRole = {
  definitions: readonly SagaDefinition[];
  store: SagaStore;
  orchestrator: Orchestrator;
  effects: Effects;
  projector?: Projector;
  stop: () => Promise<void>;
};

/**
 * The saga role of `tidemark saga run` and `tidemark up`: validates every definition,
 * ensures SAGAS, the saga log and their durables, then runs the orchestrator, the
 * and (with ClickHouse) the projector. Any number of processes may run it.
 */
export async function startSagaRole(options: SagaRoleOptions): Promise<SagaRole> {
  const { config, js, jsm, logger } = options;
  const clock = options.clock ?? systemClock;
  const metrics = sagaMetricsFor(options.registry);
  const definitions = [...config.sagas.definitions.map((d, i) => defineSaga(d, `sagas.definitions[${i}]`)), ...(options.definitions ?? [])];
  checkDefinitions(definitions, config.sagas.stream.duplicateWindow);
  if (!definitions.length) logger.info('no sagas are defined (sagas.definitions): triggers will be rejected');

  const { clickhouse } = options;
  // idempotent, so a call that timed out during a leader election is simply made again
  await retryTransient(() => ensureSagaTopology(js, jsm, config));
  if (clickhouse) await migrate(clickhouse, config.clickhouse.database, migrationOptions(config));
  const publisher = createBatchPublisher(options.nc);
  const publish = sagaPublish(publisher);
  const store = await openSagaStore(js, publisher, bucketReplicas(config, 'sagas'));
  const effects = sagaEffects({ publish, clock, metrics });
  const orchestrator = await startOrchestrator({
    ...{ js, publish, store, definitions, clock, logger, metrics, effects },
    concurrency: config.sagas.concurrency,
    maxActive: config.sagas.maxActive,
    holdDeadlinesMs: config.sagas.ackWait,
    poisonAfter: config.nats.poisonAfter,
    // what an input writes to: the saga log and SAGAS (commands, ticks)
    healthy: natsAnswers(jsm, [SAGA_STREAM, SAGA_LOG_STREAM]),
  });
  const projector = clickhouse ? await startProjector({ js, clickhouse, db: config.clickhouse.database, logger }) : undefined;
  logger.info({ sagas: definitions.map((d) => d.name) }, 'saga orchestrator started');

  return {
    definitions,
    store,
    orchestrator,
    effects,
    ...(projector ? { projector } : {}),
    stop: async () => {
      await orchestrator.stop();
      await projector?.stop();
      publisher.close();
    },
  };
}
