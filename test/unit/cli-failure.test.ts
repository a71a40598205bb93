import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireDataDir, lockPath, readDataDirOwner } from '../../src/cli/data-dir-lock.ts';
import { explain, wantsDetail } from '../../src/cli/failure.ts';
import { isPortFree, portHolder } from '../../src/cli/ports.ts';
import { ErrorCodes, isTidemarkError, TidemarkError } from '../../src/core/errors.ts';
import { parseNatsServerVersion, versionAtLeast } from '../../src/nats/embedded-server.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-failure-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('explain: the one place a failure becomes a line and an exit code', () => {
  it('passes our coded errors through with exit 2', () => {
    expect(explain(new TidemarkError(ErrorCodes.PORT_IN_USE, 'port 1 is taken'))).toEqual({ message: 'port 1 is taken', exitCode: 2, code: 'PORT_IN_USE' });
  });

  it('recognises what libraries throw for things a user causes', () => {
    const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:8080'), { code: 'EADDRINUSE', port: 8080, address: '127.0.0.1' });
    expect(explain(inUse)).toMatchObject({ code: 'PORT_IN_USE', exitCode: 2, message: expect.stringMatching(/^port 8080 on 127\.0\.0\.1 is already in use: .*TIDEMARK_HTTP_PORT/) });
    expect(explain(new Error('cannot listen', { cause: inUse }))).toMatchObject({ code: 'PORT_IN_USE' });
    const noJs = Object.assign(new Error('jetstream is not enabled'), { name: 'JetStreamNotEnabled' });
    expect(explain(noJs)).toMatchObject({ code: 'JETSTREAM_DISABLED', exitCode: 2 });
    expect(explain(new Error('Code: 76. DB::Exception: Cannot lock file /x/clickhouse/status. Another server instance in same directory is already running.'))).toMatchObject({ code: 'DATA_DIR_LOCKED' });
  });

  it('anything else is unexpected: exit 1 and a pointer to --verbose', () => {
    expect(explain(new TypeError('x is not a function'))).toEqual({ message: 'x is not a function (unexpected: run with --verbose for the details)', exitCode: 1 });
  });

  it('detail on --verbose or LOG_LEVEL=debug', () => {
    expect(wantsDetail(['node', 'tidemark', 'up', '--verbose'], {})).toBe(true);
    expect(wantsDetail(['node', 'tidemark', 'up'], { LOG_LEVEL: 'DEBUG' })).toBe(true);
    expect(wantsDetail(['node', 'tidemark', 'up'], { LOG_LEVEL: 'info' })).toBe(false);
  });
});

describe('nats-server versions', () => {
  it('reads what --version prints', () => {
    expect(parseNatsServerVersion('nats-server: v2.9.10\n')).toBe('2.9.10');
    expect(parseNatsServerVersion('nonsense')).toBeUndefined();
  });

  it('compares like the numeric triple it is', () => {
    const triple = fc.tuple(fc.nat(30), fc.nat(30), fc.nat(30));
    fc.assert(fc.property(triple, triple, (a, b) => {
      // oracle: lexicographic order of the number arrays
      const cmp = a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
      expect(versionAtLeast(a.join('.'), b.join('.'))).toBe(cmp >= 0);
    }));
  });
});

describe('data directory owner file', () => {
  it('one owner at a time; a file left by a dead process is taken over', () => {
    const data = join(dir, 'data');
    const lock = acquireDataDir(data, 'up');
    // this process is the owner, so it does not count itself as another one
    expect(readDataDirOwner(data)).toBeUndefined();
    lock.update({ nats: 'nats://127.0.0.1:1' });
    expect(JSON.parse(readFileSync(lockPath(data), 'utf8'))).toMatchObject({ pid: process.pid, command: 'up', nats: 'nats://127.0.0.1:1' });
    lock.release();

    // a pid that cannot be alive (above Linux's pid_max)
    writeFileSync(lockPath(data), JSON.stringify({ pid: 2 ** 30, command: 'up', startedAt: 'then' }));
    expect(readDataDirOwner(data)).toBeUndefined();
    const again = acquireDataDir(data, 'init');
    expect(JSON.parse(readFileSync(lockPath(data), 'utf8'))).toMatchObject({ pid: process.pid, command: 'init' });
    again.release();
  });

  it('a live owner makes the next claim fail with its pid', () => {
    const data = join(dir, 'held');
    acquireDataDir(data, 'up');
    // the parent of this test process is alive and is a node process: stands in for another tidemark
    writeFileSync(lockPath(data), JSON.stringify({ pid: process.ppid, command: 'up', startedAt: 'earlier', nats: 'nats://127.0.0.1:2' }));
    const error = (() => {
      try {
        acquireDataDir(data, 'up');
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(isTidemarkError(error, 'DATA_DIR_LOCKED')).toBe(true);
    expect((error as Error).message).toContain(`is in use by \`tidemark up\` (pid ${process.ppid}, started earlier)`);
  });
});

describe('ports', () => {
  it('a held port is not free, and its holder is this process when we hold it', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      expect(await isPortFree('127.0.0.1', port)).toBe(false);
      expect(await portHolder('127.0.0.1', port)).toMatchObject({ pid: process.pid });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    expect(await isPortFree('127.0.0.1', port)).toBe(true);
    expect(await portHolder('127.0.0.1', port)).toBeUndefined();
  });
});
