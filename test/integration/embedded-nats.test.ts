import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { isTidemarkError } from '../../src/core/errors.ts';
import { startNatsServer } from '../../src/nats/embedded-server.ts';
import { startPlainNats } from '../harness/nats.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-embedded-nats-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('startNatsServer waits for its own child', () => {
  it('on port 0 reads the port and server id the child reports, and that is the server one reaches', async () => {
    const server = await startNatsServer({ storeDir: join(dir, 'a'), port: 0 });
    try {
      expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
      const nc = await connect({ servers: server.url });
      expect(nc.info?.server_id).toBe(server.serverId);
      expect(nc.info?.jetstream).toBe(true);
      await nc.close();
    } finally {
      await server.stop();
    }
  });

  it('on a port another server holds, fails with PORT_IN_USE instead of taking that server for its own', async () => {
    const plain = await startPlainNats();
    try {
      const error = await startNatsServer({ storeDir: join(dir, 'b'), port: plain.port }).catch((err: unknown) => err);
      expect(isTidemarkError(error, 'PORT_IN_USE')).toBe(true);
      expect((error as Error).message).toBe(`port ${plain.port} on 127.0.0.1 is already in use, so nats-server cannot listen there`);
    } finally {
      await plain.dispose();
    }
  });
});
