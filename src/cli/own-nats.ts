import { join, resolve } from 'node:path';
import type { Config } from '../core/config.ts';
import { isTidemarkError } from '../core/errors.ts';
import { assertNatsServerUsable, startNatsServer, type EmbeddedNats } from '../nats/embedded-server.ts';
import { describeHolder, portHolder } from './ports.ts';

/**
 * Starts the embedded nats-server for `tidemark up`: on the configured port when it is free,
 * else on a free port nats-server picks, saying why. A server we did not start is never used
 * (the Debian package's service listens on 4222 without JetStream).
 */
export async function startOwnNats(config: Config, notice: (line: string) => void): Promise<EmbeddedNats> {
  assertNatsServerUsable();
  const { host, port } = config.nats.embedded;
  const storeDir = resolve(join(config.dataDir, 'nats'));
  const moved = (why: string) => notice(`port ${port} is held by ${why}, which this Tidemark did not start: starting the embedded nats-server on a free port instead`);
  if (port === 0) return startNatsServer({ storeDir, host, port: 0 });
  const holder = await portHolder(host, port);
  if (holder) {
    moved(describeHolder(holder));
    return startNatsServer({ storeDir, host, port: 0 });
  }
  try {
    return await startNatsServer({ storeDir, host, port });
  } catch (err) {
    // taken between our look and the server's bind
    if (!isTidemarkError(err, 'PORT_IN_USE')) throw err;
    const late = await portHolder(host, port);
    moved(late ? describeHolder(late) : 'another program');
    return startNatsServer({ storeDir, host, port: 0 });
  }
}
