/**
 * Proves that the tests of the given files do not depend on each other: every test runs
 * alone (`vitest run <file> -t <its name>`, exactly one test must pass), then the file in
 * full in a shuffled order (`--sequence.shuffle`, seed printed so a failure can be rerun).
 *
 *   npx tsx scripts/check-test-isolation.ts test/integration/monitor-alerts.test.ts [more files] [--no-shuffle]
 *
 * Exits 1 when any run fails, with a line per failed run.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const vitest = join('node_modules', '.bin', 'vitest');

type Report = { numPassedTests: number; numFailedTests: number; testResults: Array<{ assertionResults: Array<{ fullName: string; status: string; failureMessages?: string[] }> }> };

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function vitestRun(args: string[]): Promise<{ report: Report | undefined; ms: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'isolation-'));
  const outputFile = join(dir, 'report.json');
  const started = Date.now();
  try {
    await run(vitest, ['run', ...args, '--reporter=json', `--outputFile=${outputFile}`], { maxBuffer: 64 * 1024 * 1024 }).catch(() => undefined);
    let report: Report | undefined;
    try {
      report = JSON.parse(readFileSync(outputFile, 'utf8')) as Report;
    } catch {
      report = undefined;
    }
    return { report, ms: Date.now() - started };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function testNames(file: string): Promise<string[]> {
  const { stdout } = await run(vitest, ['list', file, '--json'], { maxBuffer: 16 * 1024 * 1024 });
  return (JSON.parse(stdout) as Array<{ name: string }>).map((t) => t.name);
}

/** The failed tests of a run, each with the first line of its error. */
const failedNames = (report: Report | undefined) => report?.testResults.flatMap((f) => f.assertionResults.filter((a) => a.status === 'failed').map((a) => `${a.fullName} [${(a.failureMessages?.[0] ?? '').split('\n')[0]}]`)) ?? ['(no report: the run crashed)'];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const shuffle = !args.includes('--no-shuffle');
  const files = args.filter((a) => !a.startsWith('--'));
  if (files.length === 0) throw new Error('usage: tsx scripts/check-test-isolation.ts <test files> [--no-shuffle]');
  const failures: string[] = [];
  for (const file of files) {
    const names = await testNames(file);
    for (const full of names) {
      // the leaf name, anchored at its end: vitest matches -t against the whole "describe > test" name
      const leaf = full.split(' > ').at(-1)!;
      const { report, ms } = await vitestRun([file, '-t', `${escape(leaf)}$`]);
      const ok = report?.numPassedTests === 1 && report.numFailedTests === 0;
      console.log(`${ok ? 'ok  ' : 'FAIL'} alone    ${file} :: ${full} (${(ms / 1000).toFixed(1)} s${report ? `, ${report.numPassedTests} passed` : ''})`);
      if (!ok) failures.push(`${file} :: ${full} alone: ${failedNames(report).join('; ') || `${report?.numPassedTests ?? 0} passed, expected 1`}`);
    }
    if (shuffle) {
      const seed = Date.now() % 1_000_000;
      const { report, ms } = await vitestRun([file, '--sequence.shuffle', `--sequence.seed=${seed}`]);
      const ok = report !== undefined && report.numFailedTests === 0 && report.numPassedTests === names.length;
      console.log(`${ok ? 'ok  ' : 'FAIL'} shuffled ${file} seed ${seed} (${(ms / 1000).toFixed(1)} s)`);
      if (!ok) failures.push(`${file} shuffled with seed ${seed}: ${failedNames(report).join('; ')}`);
    }
  }
  if (failures.length > 0) {
    console.log(`\n${failures.length} failed run(s):\n${failures.join('\n')}`);
    process.exit(1);
  }
  console.log(`\nevery test of ${files.length} file(s) passes alone${shuffle ? ' and in a shuffled file' : ''}`);
}

await main();
