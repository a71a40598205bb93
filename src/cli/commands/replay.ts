import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { migrate, migrationOptions } from '../../clickhouse/migrations.ts';
import { createLogger } from '../../core/logger.ts';
import { systemClock } from '../../core/time.ts';
import { openRevisionStore } from '../../processors/daily/revision-store.ts';
import { replayReport } from '../../processors/daily/replay.ts';
import { openClickHouseForTool } from '../clickhouse-access.ts';
import { configFor, openNats } from '../runtime.ts';
import { findReport } from './report.ts';
import { bucketReplicas } from '../../nats/buckets.ts';

export function register(program: Command): void {
  program
    .command('replay')
    .description('recompute a report from the event store (after a rule change); changed figures get new revisions with reason "replay"')
    .requiredOption('-r, --report <name>', 'report name')
    .option('--from <YYYY-MM-DD>', 'first business day')
    .option('--to <YYYY-MM-DD>', 'last business day')
    .action(async (opts: { report: string; from?: string; to?: string }, command: Command) => {
      const config = await configFor(command);
      const report = findReport(config, opts.report);
      const logger = createLogger('replay');
      const nats = await openNats(config, logger, { embedded: false, name: 'tidemark-replay' });
      const clickhouse = await openClickHouseForTool(config);
      try {
        const db = config.clickhouse.database;
        await migrate(clickhouse.client, db, migrationOptions(config));
        const store = await openRevisionStore(nats.js, bucketReplicas(config, 'daily'));
        const bar = new cliProgress.SingleBar({ format: 'replay {bar} {percentage}% | {value}/{total} events | {day} | {eps} events/s', stream: process.stderr }, cliProgress.Presets.shades_classic);
        const started = performance.now();
        const result = await replayReport({ store, clickhouse: clickhouse.client, db, js: nats.js, clock: systemClock, logger }, report, { ...(opts.from ? { from: opts.from } : {}), ...(opts.to ? { to: opts.to } : {}) }, {
          onStart: (total) => bar.start(total, 0, { day: '', eps: 0 }),
          onDay: ({ day, done }) => bar.update(done, { day, eps: Math.round(done / ((performance.now() - started) / 1000)) }),
        });
        bar.stop();
        await store.close();
        process.stdout.write(`replayed ${report.name}: ${result.days} days, ${result.events} events in ${result.seconds.toFixed(1)} s (${Math.round(result.events / Math.max(result.seconds, 1e-3))} events/s), ${result.revisions} new revisions\n`);
      } finally {
        await clickhouse.close();
        await nats.close();
      }
    });
}
