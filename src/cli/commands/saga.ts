import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { jetstream } from '@nats-io/jetstream';
import type { Command } from 'commander';
import type { Config } from '../../core/config.ts';
import { parseDuration } from '../../core/duration.ts';
import { ErrorCodes, TidemarkError } from '../../core/errors.ts';
import { createLogger } from '../../core/logger.ts';
import { connectNats } from '../../nats/connect.ts';
import { requestControl } from '../../saga/control.ts';
import { defineSaga } from '../../saga/definition.ts';
import type { SagaDefinition } from '../../saga/logic/types.ts';
import { startRoles } from '../../core/role.ts';
import { sagaRole } from '../roles.ts';
import type { SagaStore } from '../../saga/store.ts';
import { openSagaStore } from '../../saga/topology.ts';
import { createBatchPublisher } from '../../nats/batch-publisher.ts';
import { formatList, formatShow } from '../../saga/views.ts';
import { openClickHouseForTool } from '../clickhouse-access.ts';
import { configFor, natsTarget, onShutdown, openNats } from '../runtime.ts';
import { bucketReplicas } from '../../nats/buckets.ts';

/** A module exporting `definitions` (or a default) made with defineSaga, or plain specs. */
async function loadDefinitions(file: string): Promise<SagaDefinition[]> {
  const mod = (await import(pathToFileURL(resolve(file)).href)) as { definitions?: unknown; default?: unknown };
  const exported = mod.definitions ?? mod.default;
  if (exported === undefined) throw new TidemarkError(ErrorCodes.SAGA_DEFINITION_INVALID, `${file} exports neither "definitions" nor a default`);
  const list = Array.isArray(exported) ? exported : [exported];
  return list.map((spec, i) => defineSaga(spec as Parameters<typeof defineSaga>[0], `${file}[${i}]`));
}

/** For the operator commands: NATS and the saga log only, no embedded server and no log lines, so stdout is the answer. */
async function withStore<T>(config: Config, fn: (ctx: { store: SagaStore; js: ReturnType<typeof jetstream> }) => Promise<T>): Promise<T> {
  const nc = await connectNats(config, natsTarget(config).url, 'tidemark-saga-cli');
  try {
    const js = jetstream(nc);
    return await fn({ js, store: await openSagaStore(js, createBatchPublisher(nc), bucketReplicas(config, 'sagas')) });
  } finally {
    await nc.close();
  }
}

const print = (text: string) => process.stdout.write(`${text}\n`);

function waitMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `--wait: "${text}" is not a duration (e.g. 10s)`);
  return ms;
}

async function control(command: Command, sagaId: string, action: 'retry' | 'abort', opts: { wait: string; reason?: string }): Promise<void> {
  const config = await configFor(command);
  await withStore(config, async ({ js, store }) => {
    const outcome = await requestControl({ js, store, sagaId, action, waitMs: waitMs(opts.wait), ...(opts.reason ? { reason: opts.reason } : {}) });
    print(outcome.settled ? `${sagaId}: ${action} applied, now ${outcome.record.status}` : `${sagaId}: ${action} queued; no orchestrator has applied it yet (status ${outcome.record.status})`);
  });
}

export function register(program: Command): void {
  const saga = program.command('saga').description('saga orchestrator: run it (default), or list, show, retry and abort sagas');

  saga
    .command('run', { isDefault: true })
    .description('run the orchestrator role: trigger/reply consumer, commands, deadlines, ClickHouse saga tables')
    .option('--definitions <module>', 'a module exporting saga definitions (defineSaga) to run besides sagas.definitions')
    .option('--no-clickhouse', 'do not write the sagas and saga_steps tables')
    .action(async (opts: { definitions?: string; clickhouse: boolean }, command: Command) => {
      const config = await configFor(command);
      const logger = createLogger('saga');
      const definitions = opts.definitions ? await loadDefinitions(opts.definitions) : [];
      const nats = await openNats(config, logger, { embedded: false, name: 'tidemark-saga' });
      // Beside a running `tidemark up`, its endpoint (found through the data directory's owner file), as every role.
      const clickhouse = opts.clickhouse ? await openClickHouseForTool(config) : undefined;
      const roles = await startRoles([sagaRole({ config, nats, logger, definitions, ...(clickhouse ? { clickhouse: clickhouse.client } : {}) })], logger);
      // the handler first: a SIGTERM sent as soon as the line below is read must find it
      onShutdown(logger, async () => {
        await roles.stop();
        await nats.close();
        await clickhouse?.close();
      });
      logger.info({ clickhouse: clickhouse?.via ?? 'off' }, 'saga orchestrator running');
    });

  saga
    .command('list')
    .description('sagas, newest first, with status, current step and duration (parked ones wait for retry/abort)')
    .option('--name <saga>', 'only sagas of this definition')
    .option('--status <status>', 'only this status, e.g. parked for the manual-intervention queue')
    .option('--limit <n>', 'at most this many', '50')
    .option('--json', 'one JSON record per line')
    .action(async (opts: { name?: string; status?: string; limit: string; json?: boolean }, command: Command) => {
      const config = await configFor(command);
      await withStore(config, async ({ store }) => {
        const loaded = await store.list(opts.name ? `${opts.name}.>` : '>');
        const records = loaded
          .map((l) => l.record)
          .filter((r) => !opts.status || r.status === opts.status)
          .sort((a, b) => (b.events[0]?.at ?? 0) - (a.events[0]?.at ?? 0))
          .slice(0, Number(opts.limit));
        print(opts.json ? records.map((r) => JSON.stringify({ sagaId: r.sagaId, name: r.name, status: r.status })).join('\n') : formatList(records, Date.now()));
      });
    });

  saga
    .command('show <id>')
    .description('one saga: status, failure, and its step timeline with durations')
    .option('--json', 'the saga log as stored')
    .action(async (sagaId: string, opts: { json?: boolean }, command: Command) => {
      const config = await configFor(command);
      await withStore(config, async ({ store }) => {
        const loaded = await store.load(sagaId);
        if (!loaded) throw new TidemarkError(ErrorCodes.SAGA_NOT_FOUND, `no saga ${sagaId}`);
        print(opts.json ? JSON.stringify(loaded.record, null, 2) : formatShow(loaded.record, Date.now()));
      });
    });

  saga
    .command('retry <id>')
    .description('resume compensating a parked saga, with a fresh retry budget for the stuck step')
    .option('--wait <duration>', 'how long to wait for an orchestrator to apply it', '10s')
    .action((sagaId: string, opts: { wait: string }, command: Command) => control(command, sagaId, 'retry', opts));

  saga
    .command('abort <id>')
    .description('close a parked saga as aborted: the operator has undone the rest by hand')
    .option('--reason <text>', 'kept in the saga log')
    .option('--wait <duration>', 'how long to wait for an orchestrator to apply it', '10s')
    .action((sagaId: string, opts: { wait: string; reason?: string }, command: Command) => control(command, sagaId, 'abort', opts));
}
