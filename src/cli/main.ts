import { Command, CommanderError } from 'commander';
import { register as registerInit } from './commands/init.ts';
import { register as registerGateway } from './commands/gateway.ts';
import { register as registerUp } from './commands/up.ts';
import { register as registerProcessor } from './commands/processor.ts';
import { register as registerReport } from './commands/report.ts';
import { register as registerReplay } from './commands/replay.ts';
import { register as registerBench } from './commands/bench.ts';
import { register as registerClickHouse } from './commands/clickhouse.ts';
import { register as registerMonitor } from './commands/monitor.ts';
import { register as registerReconcile } from './commands/reconcile.ts';
import { register as registerSaga } from './commands/saga.ts';
import { register as registerDoctor } from './commands/doctor.ts';
import { reportFailure, wantsDetail } from './failure.ts';
import { loadConfig, resolveConfigPath } from '../core/config.ts';

export function buildProgram(): Command {
  const program = new Command('tidemark')
    .description('Stream processing on NATS JetStream and ClickHouse: figures published now, corrected later, with revision numbers.')
    .option('-c, --config <file>', 'configuration file (else TIDEMARK_CONFIG, else config/tidemark.yaml)')
    .option('--verbose', 'on failure, print the stack trace and causes after the one-line message (also LOG_LEVEL=debug)')
    .showHelpAfterError();
  registerUp(program);
  registerInit(program);
  registerGateway(program);
  registerProcessor(program);
  registerMonitor(program);
  registerSaga(program);
  registerReconcile(program);
  registerReport(program);
  registerReplay(program);
  registerBench(program);
  registerDoctor(program);
  registerClickHouse(program, async () => loadConfig(resolveConfigPath(program.opts<{ config?: string }>().config, process.env), process.env));
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    reportFailure(err, wantsDetail(argv, process.env));
  }
}
