import type { Command } from 'commander';
import { migrate, migrationOptions } from '../../clickhouse/migrations.ts';
import type { Config, ReportConfig } from '../../core/config.ts';
import { ErrorCodes, TidemarkError } from '../../core/errors.ts';
import { reportDay } from '../../query/report-day.ts';
import { openClickHouseForTool } from '../clickhouse-access.ts';
import { configFor } from '../runtime.ts';
import { renderTable } from '../table.ts';

export function findReport(config: Config, name: string): ReportConfig {
  const report = config.reports.find((r) => r.name === name);
  if (!report) throw new TidemarkError(ErrorCodes.REPORT_UNKNOWN, `no report "${name}" in the configuration (known: ${config.reports.map((r) => r.name).join(', ') || 'none'})`);
  return report;
}

export function parseInstant(text: string, flag: string): number {
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (Number.isNaN(ms)) throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `${flag}: "${text}" is not an ISO-8601 time or epoch milliseconds`);
  return ms;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function register(program: Command): void {
  program
    .command('report')
    .description('print a report day: the published revisions, checked against a recomputation from raw events')
    .requiredOption('-r, --report <name>', 'report name')
    .requiredOption('-d, --day <YYYY-MM-DD>', 'business day in the report time zone')
    .option('--as-of <time>', 'the figure as known at this time (ISO-8601 or epoch ms)')
    .option('--history', 'every revision, not only the latest')
    .option('--json', 'machine-readable output')
    .action(async (opts: { report: string; day: string; asOf?: string; history?: boolean; json?: boolean }, command: Command) => {
      const config = await configFor(command);
      const report = findReport(config, opts.report);
      const asOf = opts.asOf === undefined ? undefined : parseInstant(opts.asOf, '--as-of');
      const { client, close } = await openClickHouseForTool(config);
      try {
        const db = config.clickhouse.database;
        // on a fresh data directory the tables do not exist yet: create them and report nothing
        await migrate(client, db, migrationOptions(config));
        const { revisions, checks } = await reportDay(client, db, report, opts.day, { asOf, history: opts.history ?? false });
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ report: report.name, day: opts.day, asOf: asOf === undefined ? null : iso(asOf), revisions, checks }, null, 2)}\n`);
          return;
        }
        const names = Object.keys(report.measures);
        const rows = revisions.map((r) => [r.label, String(r.revision), r.status, r.reason, iso(r.knownAt), String(r.events), String(r.lateEvents), ...names.map((n) => r.measures[n] ?? '')]);
        process.stdout.write(`${report.name} ${opts.day} (${report.timeZone})${asOf === undefined ? '' : ` as known at ${iso(asOf)}`}\n\n`);
        process.stdout.write(`${rows.length ? renderTable(['group', 'rev', 'status', 'reason', 'known_at', 'events', 'late', ...names], rows) : 'no revisions'}\n\n`);
        for (const check of checks) {
          process.stdout.write(check.agrees
            ? `${check.label}: agrees with the raw events${asOf === undefined ? '' : ' received by then'}\n`
            : `${check.label}: raw events say ${JSON.stringify(check.fromEvents)} (events received after the latest revision are not folded in yet)\n`);
        }
      } finally {
        await close();
      }
    });
}
