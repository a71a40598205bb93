import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/**
 * Issue 20, point 5: the production shape refuses to start without its secrets, and holds no
 * default password. `docker-compose config` interpolates the file without a Docker engine, so a
 * missing `${VAR:?…}` fails here exactly as `docker-compose up` would.
 */

const SECRETS = { NATS_PASSWORD: 'nats-pw-1', CLICKHOUSE_PASSWORD: 'ch-pw-1', TIDEMARK_HTTP_TOKEN: 'http-token-1', GRAFANA_ADMIN_PASSWORD: 'grafana-pw-1' };
const hasCompose = spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0;

function composeConfig(env: Record<string, string>): { status: number | null; out: string; err: string } {
  // Only PATH and HOME from the outside: a secret set in the developer's shell must not make the test pass.
  const result = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env } });
  return { status: result.status, out: result.stdout, err: result.stderr };
}

describe('docker-compose.yml', () => {
  it('holds no default secret', () => {
    const text = readFileSync('docker-compose.yml', 'utf8');
    expect(text).not.toMatch(/change-me/);
    expect(text).not.toMatch(/(PASSWORD|TOKEN)[^\n]*:-/);
  });

  it.runIf(hasCompose)('validates with every secret set, and passes them to NATS, ClickHouse and the gateway', () => {
    const { status, out, err } = composeConfig(SECRETS);
    expect([status, err]).toEqual([0, '']);
    expect(out).toMatch(/--pass\n\s+- nats-pw-1/);
    expect(out).toMatch(/CLICKHOUSE_PASSWORD: ch-pw-1/);
    expect(out).toMatch(/TIDEMARK_HTTP_TOKEN: http-token-1/);
    expect(out).toMatch(/127\.0\.0\.1:4222:4222/);
    expect(out).toMatch(/127\.0\.0\.1:8123:8123/);
    expect(out).toMatch(/GF_SECURITY_ADMIN_PASSWORD: grafana-pw-1/);
    expect(out).toMatch(/127\.0\.0\.1:3000:3000/);
  });

  // docker-compose takes a second or more per run (Python start-up); five runs on a loaded machine.
  it.runIf(hasCompose)('refuses without any one of them, naming it', { timeout: 120_000 }, () => {
    for (const missing of Object.keys(SECRETS)) {
      const env = Object.fromEntries(Object.entries(SECRETS).filter(([name]) => name !== missing));
      const { status, err } = composeConfig(env);
      expect([missing, status]).toEqual([missing, 1]);
      expect(err).toContain(`set ${missing}`);
    }
    expect(composeConfig({}).status).toBe(1);
  });
});
