import type { Command } from 'commander';
import { runChecks, type CheckResult } from '../doctor/checks.ts';
import { configFor } from '../runtime.ts';

const MARK: Record<CheckResult['status'], string> = { pass: '✓', warn: '!', fail: '✗' };

export const formatCheck = (check: CheckResult): string => `${MARK[check.status]} ${check.text}${check.fix ? ` — ${check.fix}` : ''}`;

/**
 * Doctor ends by itself whatever hangs: every check is bounded (see CHECK_MS; at most about
 * 11 s in all), and this guard covers what is not a check (loading the config, closing a connection).
 */
const OVERALL_MS = 15_000;

export function register(program: Command): void {
  program
    .command('doctor')
    .description('check what `tidemark up` and the roles need: nats-server, JetStream, ports, data directory, ClickHouse, clock; exits 1 when a check fails')
    .action(async (_opts, command: Command) => {
      setTimeout(() => {
        process.stdout.write(`✗ doctor did not finish within ${OVERALL_MS / 1000} s — something it waits for never answered; run it again with --verbose\n`);
        process.exit(1);
      }, OVERALL_MS);
      const config = await configFor(command);
      const results = await runChecks(config);
      for (const check of results) process.stdout.write(`${formatCheck(check)}\n`);
      const failed = results.filter((r) => r.status === 'fail').length;
      process.stdout.write(failed ? `${failed} check(s) failed\n` : 'all checks passed\n');
      // chDB and NATS handles may keep the event loop alive; the answer is complete
      process.exit(failed ? 1 : 0);
    });
}
