import type { Command } from 'commander';
import { createLogger } from '../../core/logger.ts';
import { configFor, openNats } from '../runtime.ts';

export function register(program: Command): void {
  program
    .command('init')
    .description('create or update the JetStream streams and durable consumers (idempotent)')
    .action(async (_opts, command: Command) => {
      const config = await configFor(command);
      const logger = createLogger('init');
      const nats = await openNats(config, logger, { embedded: true, name: 'tidemark-init' });
      await nats.close();
      for (const change of nats.changes) process.stdout.write(`${change.kind.padEnd(8)} ${change.name.padEnd(20)} ${change.action}\n`);
      process.stdout.write(`topology ready on ${nats.url}\n`);
    });
}
