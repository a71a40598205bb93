import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { migrate, migrationOptions } from '../../clickhouse/migrations.ts';
import type { Config, ReconciliationConfig } from '../../core/config.ts';
import { ErrorCodes, TidemarkError } from '../../core/errors.ts';
import { instanceId } from '../../core/instance.ts';
import { createLogger } from '../../core/logger.ts';
import { systemClock } from '../../core/time.ts';
import { businessDay } from '../../core/business-day.ts';
import { openClaims } from '../../reconcile/claims.ts';
import { ensureReconStream } from '../../reconcile/feeds.ts';
import { isBatchRecon, runBatch } from '../../reconcile/batch-run.ts';
import { acknowledge, listDiscrepancies, listRuns, summarize } from '../../reconcile/history.ts';
import { openStateStore } from '../../reconcile/state-store.ts';
import { isStreamingRecon } from '../../reconcile/streaming.ts';
import { startRoles } from '../../core/role.ts';
import { reconcileRole } from '../roles.ts';
import type { DiscrepancyStatus } from '../../sinks/clickhouse/recon-tables.ts';
import { openClickHouseForTool } from '../clickhouse-access.ts';
import { configFor, onShutdown, openNats } from '../runtime.ts';
import { bucketReplicas } from '../../nats/buckets.ts';

const DAY = /^\d{4}-\d{2}-\d{2}$/;

function pick(config: Config, name: string | undefined, usable: (r: ReconciliationConfig) => boolean, mode: string): ReconciliationConfig[] {
  if (name === undefined) return config.reconciliations.filter(usable);
  const recon = config.reconciliations.find((r) => r.name === name);
  if (!recon) throw new TidemarkError(ErrorCodes.RECON_UNKNOWN, `no reconciliation named "${name}" (known: ${config.reconciliations.map((r) => r.name).join(', ') || 'none'})`);
  if (!usable(recon)) throw new TidemarkError(ErrorCodes.RECON_MODE_UNSUPPORTED, `reconciliation ${name} cannot run in ${mode} mode`);
  return [recon];
}

function checkDay(day: string | undefined): string | undefined {
  if (day !== undefined && !DAY.test(day)) throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `--day "${day}" is not YYYY-MM-DD`);
  return day;
}

const print = (line: string) => process.stdout.write(`${line}\n`);

async function runCommand(command: Command, opts: { name?: string; day?: string }): Promise<void> {
  const config = await configFor(command);
  const logger = createLogger('reconcile');
  const recons = pick(config, opts.name, isBatchRecon, 'batch');
  const day = checkDay(opts.day);
  const nats = await openNats(config, logger, { embedded: false, name: 'tidemark-reconcile' });
  const shared = await openClickHouseForTool(config);
  const clickhouse = shared.client;
  try {
    const db = config.clickhouse.database;
    await migrate(clickhouse, db, migrationOptions(config));
    await ensureReconStream(nats.jsm, config.nats.replicas); // the manual queue lives there
    const actor = instanceId('batch');
    const claims = await openClaims(nats.js, { clock: systemClock, owner: actor, leaseMs: config.nats.ackWait, replicas: bucketReplicas(config, 'reconClaims') });
    for (const recon of recons) {
      // default: yesterday in the reconciliation's own business calendar
      const period = day ?? businessDay(systemClock.now() - 86_400_000, recon.timeZone);
      const run = await runBatch({ recon, clickhouse, db, js: nats.js, claims, clock: systemClock, actor }, period);
      const s = run.stats;
      const by = (type: string) => run.discrepancies.filter((d) => d.type === type).length;
      print(
        `${recon.name} ${period}: A ${s.rowsA} rows, B ${s.rowsB} rows; MissingInA ${by('MissingInA')}, MissingInB ${by('MissingInB')}, ` +
          `Mismatch ${by('Mismatch')}, Duplicate ${by('Duplicate')} (${run.outcome.fresh} new); healed ${run.outcome.healed}, queued ${run.outcome.queued}` +
          `${run.alert ? ', alert raised' : ''}; ${s.levels} levels, ${s.rowsFetched} rows fetched, ${s.durationMs} ms (run ${run.runId})`,
      );
    }
  } finally {
    await shared.close();
    await nats.close();
  }
}

async function streamCommand(command: Command, opts: { name?: string[] }): Promise<void> {
  const config = await configFor(command);
  const logger = createLogger('reconcile');
  const names = opts.name;
  for (const name of names ?? []) pick(config, name, isStreamingRecon, 'streaming');
  const nats = await openNats(config, logger, { embedded: false, name: 'tidemark-reconcile' });
  const shared = await openClickHouseForTool(config);
  const clickhouse = shared.client;
  const roles = await startRoles([reconcileRole({ config, nats, clickhouse, logger, ...(names ? { names } : {}) })], logger);
  // the handler first: a SIGTERM sent as soon as the line below is read must find it
  onShutdown(logger, async () => {
    await roles.stop();
    await nats.close();
    await shared.close();
  });
  logger.info({ clickhouse: shared.via }, 'reconcile stream running');
}

const STATUSES: readonly string[] = ['open', 'healed', 'acknowledged'];

/** Streaming keys still inside their window (state `expected`), read from the KV match state. */
async function printPending(config: Config, name: string | undefined): Promise<void> {
  const logger = createLogger('reconcile');
  const nats = await openNats(config, logger, { embedded: false, name: 'tidemark-reconcile' });
  try {
    for (const recon of pick(config, name, isStreamingRecon, 'streaming')) {
      const expected = (await (await openStateStore(nats.js, recon, bucketReplicas(config, 'reconState'))).entries()).filter((e) => e.state === 'expected');
      print(`${recon.name}: ${expected.length} expected`);
      for (const e of expected) print(`  key=${JSON.stringify(e.key)} has ${e.a.first ? 'A' : 'B'}, waits until ${new Date(e.deadline ?? 0).toISOString()}`);
    }
  } finally {
    await nats.close();
  }
}

async function reportCommand(command: Command, opts: { name?: string; day?: string; status?: DiscrepancyStatus; limit: string; json?: boolean; pending?: boolean }): Promise<void> {
  const config = await configFor(command);
  if (opts.status !== undefined && !STATUSES.includes(opts.status)) throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `--status "${opts.status}" is not one of ${STATUSES.join(', ')}`);
  if (!/^[1-9]\d*$/.test(opts.limit)) throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `--limit "${opts.limit}" is not a positive integer`);
  if (opts.pending) return printPending(config, opts.name);
  const shared = await openClickHouseForTool(config);
  const clickhouse = shared.client;
  try {
    const db = config.clickhouse.database;
    await migrate(clickhouse, db, migrationOptions(config));
    const filter = { name: opts.name, period: checkDay(opts.day), status: opts.status, limit: Number(opts.limit) };
    const [runs, summary, discrepancies] = await Promise.all([listRuns(clickhouse, db, filter), summarize(clickhouse, db, filter), listDiscrepancies(clickhouse, db, filter)]);
    if (opts.json) {
      print(JSON.stringify({ runs, summary, discrepancies }, null, 2));
      return;
    }
    print('runs');
    for (const r of runs) {
      print(`  ${r.run_id}  ${r.status.padEnd(9)} ${r.period}  A ${r.rows_a} B ${r.rows_b}  MissingInA ${r.missing_in_a} MissingInB ${r.missing_in_b} Mismatch ${r.mismatches} Duplicate ${r.duplicates}  healed ${r.healed} queued ${r.queued}  ${r.duration_ms} ms${r.error ? `  error: ${r.error}` : ''}`);
    }
    print('discrepancies by type and status');
    for (const s of summary) print(`  ${s.name} ${s.period} ${s.type.padEnd(10)} ${s.status.padEnd(12)} ${s.count}`);
    print('discrepancies');
    for (const d of discrepancies) {
      print(`  ${d.id}  ${d.name} ${d.period} ${d.type}${d.side ? `(${d.side})` : ''} key=${d.key} ${d.status}${d.diffs !== '[]' ? ` diffs=${d.diffs}` : ''}${d.note ? ` note=${d.note}` : ''}`);
    }
  } finally {
    await shared.close();
  }
}

async function ackCommand(command: Command, ids: string[], opts: { note: string; by?: string }): Promise<void> {
  const config = await configFor(command);
  const shared = await openClickHouseForTool(config);
  const clickhouse = shared.client;
  try {
    const db = config.clickhouse.database;
    await migrate(clickhouse, db, migrationOptions(config));
    const acked = await acknowledge(clickhouse, db, ids, { actor: opts.by ?? userInfo().username, note: opts.note, clock: systemClock });
    print(`acknowledged ${acked.length} of ${ids.length} (the others already were)`);
  } finally {
    await shared.close();
  }
}

export function register(program: Command): void {
  const reconcile = program.command('reconcile').description('reconcile two systems: batch over ClickHouse, or streaming over subject feeds');
  reconcile
    .command('run')
    .description('batch-reconcile a business day over ClickHouse (checksum bisection), act on findings, record the run')
    .option('-n, --name <name>', 'one reconciliation (default: every batch one)')
    .option('-d, --day <YYYY-MM-DD>', 'the business day (default: yesterday in the reconciliation time zone)')
    .action((opts: { name?: string; day?: string }, command: Command) => runCommand(command, opts));
  reconcile
    .command('stream')
    .description('run the streaming reconciliation role: durable pull consumers on both feeds')
    .option('-n, --name <name...>', 'only these reconciliations (default: every streaming one)')
    .action((opts: { name?: string[] }, command: Command) => streamCommand(command, opts));
  reconcile
    .command('report')
    .description('runs, counts by type and status, and the discrepancies')
    .option('-n, --name <name>', 'one reconciliation')
    .option('-d, --day <YYYY-MM-DD>', 'one business day')
    .option('-s, --status <status>', 'open, healed or acknowledged')
    .option('--limit <n>', 'rows per list', '100')
    .option('--json', 'machine-readable output')
    .option('--pending', 'instead: streaming keys still expected within their lag window (reads NATS KV)')
    .action((opts: { name?: string; day?: string; status?: DiscrepancyStatus; limit: string; json?: boolean; pending?: boolean }, command: Command) => reportCommand(command, opts));
  reconcile
    .command('ack')
    .description('acknowledge discrepancies (e.g. from the manual queue) by id')
    .argument('<ids...>', 'discrepancy ids')
    .option('--note <text>', 'why', '')
    .option('--by <who>', 'who acknowledges (default: the OS user)')
    .action((ids: string[], opts: { note: string; by?: string }, command: Command) => ackCommand(command, ids, opts));
}
