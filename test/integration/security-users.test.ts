import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointLogin, endpointUsers } from '../../src/clickhouse/endpoint-users.ts';
import { serveEmbeddedClickHouse } from '../../src/clickhouse/http-server/server.ts';
import { lockPath } from '../../src/cli/data-dir-lock.ts';
import { openClickHouseForTool } from '../../src/cli/clickhouse-access.ts';
import { testConfig } from '../harness/config.ts';

/** Issue 20, point 3: `up`/`tidemark clickhouse` serve, and every command logs in with, one list of users. */

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tidemark-sec-users-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('endpointUsers and endpointLogin', () => {
  it('with nothing configured: default without a password, and commands log in as it', () => {
    const config = testConfig({});
    expect(endpointUsers(config, {})).toEqual([{ name: 'default', password: '', readonly: false }]);
    expect(endpointLogin(config, {})).toEqual({ username: 'default', password: '' });
  });

  it('CLICKHOUSE_USER and CLICKHOUSE_PASSWORD (or CLICKHOUSE_PASSWORD_FILE) name the one user when none is configured', () => {
    const env = { CLICKHOUSE_USER: 'tidemark', CLICKHOUSE_PASSWORD: 'pw-from-env' };
    expect(endpointUsers(testConfig({}, env), {})).toEqual([{ name: 'tidemark', password: 'pw-from-env', readonly: false }]);
    expect(endpointLogin(testConfig({}, env), {})).toEqual({ username: 'tidemark', password: 'pw-from-env' });
    const file = join(dir, 'ch-password');
    writeFileSync(file, 'pw-from-file\n');
    expect(endpointLogin(testConfig({}, { CLICKHOUSE_USER: 'tidemark', CLICKHOUSE_PASSWORD_FILE: file }), {})).toEqual({ username: 'tidemark', password: 'pw-from-file' });
    expect(() => testConfig({}, { CLICKHOUSE_PASSWORD_FILE: join(dir, 'missing') })).toThrow(/CLICKHOUSE_PASSWORD_FILE: cannot read .*ENOENT/);
  });

  it('configured users win; passwords inline, from the environment or a file; the login is the named or first writing user', () => {
    const file = join(dir, 'bob-password');
    writeFileSync(file, 'bob-pw\n');
    const config = testConfig({
      clickhouse: {
        serve: {
          users: [
            { name: 'viewer', password: 'v', readonly: true },
            { name: 'alice', passwordEnv: 'ALICE_PW' },
            { name: 'bob', passwordFile: file },
          ],
        },
      },
    });
    const env = { ALICE_PW: 'alice-pw' };
    expect(endpointUsers(config, env)).toEqual([
      { name: 'viewer', password: 'v', readonly: true },
      { name: 'alice', password: 'alice-pw', readonly: false },
      { name: 'bob', password: 'bob-pw', readonly: false },
    ]);
    expect(endpointLogin(config, env)).toEqual({ username: 'alice', password: 'alice-pw' });
    expect(endpointLogin(testConfig({ clickhouse: { ...config.clickhouse, user: 'bob' } }), env)).toEqual({ username: 'bob', password: 'bob-pw' });
    expect(() => endpointUsers(config, {})).toThrow(/users\[1\]\.passwordEnv: environment variable ALICE_PW is not set/);
    expect(() => testConfig({ clickhouse: { serve: { users: [{ name: 'x', password: 'a', passwordEnv: 'B' }] } } })).toThrow(/set one of password, passwordEnv, passwordFile/);
  });
});

describe('a command reaches the endpoint `up` serves with the same users', () => {
  for (const [what, settings, env] of [
    ['CLICKHOUSE_USER/CLICKHOUSE_PASSWORD', {}, { CLICKHOUSE_USER: 'tidemark', CLICKHOUSE_PASSWORD: 'ch-secret' }],
    ['configured users', { clickhouse: { serve: { users: [{ name: 'reader', password: 'r', readonly: true }, { name: 'writer', password: 'w' }] } } }, {}],
  ] as const) {
    it(`with ${what}`, async () => {
      // One data directory for the file: chDB binds one per process.
      const dataDir = join(dir, 'data');
      const config = testConfig({ ...settings, dataDir }, env);
      const served = (await serveEmbeddedClickHouse(config, { port: 0 }))!;
      // As `up` does: the data directory's owner file tells commands where the endpoint is. The
      // endpoint runs in this process, and a process ignores its own claim, so the claim names
      // another live process (the test runner), as a separate `up` would.
      writeFileSync(lockPath(dataDir), JSON.stringify({ pid: process.ppid, command: 'up', startedAt: new Date().toISOString(), sql: served.url }));
      try {
        // The command sees the same config, pointed at the port the endpoint got.
        const tool = await openClickHouseForTool(testConfig({ ...settings, dataDir, clickhouse: { ...(settings as { clickhouse?: object }).clickhouse, serve: { ...config.clickhouse.serve, port: served.port } } }, env));
        try {
          expect(tool.via).toBe(served.url);
          // It can write, as roles do.
          await tool.client.command({ query: 'CREATE DATABASE IF NOT EXISTS users_check' });
          expect(await (await tool.client.query({ query: 'SELECT currentUser() AS u', format: 'JSONEachRow' })).json()).toHaveLength(1);
        } finally {
          await tool.close();
        }
      } finally {
        rmSync(lockPath(dataDir), { force: true });
        await served.close();
      }
    });
  }
});
