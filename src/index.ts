/**
 * Tidemark's public API: what service authors and embedders import as `tidemark`
 * (package.json `exports`). Everything else under src/ is internal and may change
 * without notice; examples/ imports only from here (dependency-cruiser checks it).
 */

// Configuration: one zod schema, parsed from an object or loaded from a file (SPEC §9)
export { ConfigSchema, loadConfig, parseConfig, resolveConfigPath } from './core/config.ts';
export type {
  Config,
  DeadlineConfig,
  MeasureConfig,
  MonitorConfig,
  ReconciliationConfig,
  ReportConfig,
  SagaDefinitionConfig,
  SagaDefinitionInput,
  SlaConfig,
  WebhookConfig,
} from './core/config.ts';
export { ErrorCodes, TidemarkError, isTidemarkError } from './core/errors.ts';
export type { Clock } from './core/time.ts';
export { systemClock } from './core/time.ts';

// Sagas: definitions, the orchestrator role, a service's side and its outbox
export { checkDefinitions, defineSaga, type PayloadSpec, type SagaSpec, type StepSpec } from './saga/definition.ts';
export type { Backoff, CompensationDefinition, PayloadContext, SagaDefinition, SagaEvent, SagaInput, SagaState, SagaStatus, StepDefinition } from './saga/logic/types.ts';
export { startSagaRole, type SagaRole, type SagaRoleOptions } from './saga/role.ts';
export { serveSagaCommands, type CommandHandler, type ServiceAnswer, type ServiceOptions } from './saga/service.ts';
export { parseCommand, publishOnce, relayOutbox, reply, replyMessage, type OutboxMessage, type OutboxStore, type SagaCommand } from './saga/outbox.ts';
export { triggerSubject } from './saga/subjects.ts';
export type { SagaRecord, SagaStore } from './saga/store.ts';
export { attemptRows, summarize, type AttemptRow, type SagaSummary } from './saga/logic/timeline.ts';
export { formatShow } from './saga/views.ts';

// Roles in-process: one contract, a starter per role, the runtime they share
export { startRoles, type Readiness, type Role, type RoleStarter, type RunningRoles } from './core/role.ts';
export { gatewayRole, monitorRole, processorRole, readiness, reconcileRole, ROLE_NAMES, sagaRole, type RoleName } from './cli/roles.ts';
export { openNats, type NatsRuntime } from './cli/runtime.ts';
export { openClickHouse } from './clickhouse/client.ts';
export { migrate, migrationOptions } from './clickhouse/migrations.ts';
export { startProcessor, type Processor, type ProcessorOptions } from './processors/processor.ts';
export { startMonitor, type Monitor, type MonitorOptions } from './monitor/monitor.ts';
export { startNatsGateway, type NatsGateway } from './ingest/nats-gateway.ts';
export { startHttpGateway, type HttpGateway, type HttpGatewayOptions } from './ingest/http/server.ts';
export { startReconcileStreaming, type ReconcileStreaming, type StreamingOptions } from './reconcile/streaming.ts';

// NATS for embedders and examples: a private nats-server and the streams every role expects
export { startNatsServer, type EmbeddedNats } from './nats/embedded-server.ts';
export { ensureTopology } from './nats/topology.ts';

// Helpers a role of one's own can share with the built-in ones
export { runLoop, type Loop, type LoopOptions } from './core/loop.ts';
export { limiter, type Limiter } from './core/limiter.ts';
export { instanceId } from './core/instance.ts';
