import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/nats/embedded-server.ts';
import { startPlainNats, type PlainNats } from '../harness/nats.ts';
import { exited, spawnTidemarkCaptured } from '../harness/processes.ts';
import { waitFor } from '../harness/streams.ts';

let dir: string;
let plain: PlainNats;
let held: Server;
let heldPort: number;
let oldNatsDir: string;
let base: Record<string, string>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tidemark-startup-errors-'));
  writeFileSync(join(dir, 'tidemark.yaml'), '{}');
  plain = await startPlainNats();
  // Accepts and never answers; reading (and dropping) what arrives lets it see a client leave, so close() does not wait on it.
  held = createServer((socket) => socket.resume());
  await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', resolve));
  heldPort = (held.address() as { port: number }).port;
  // a nats-server from before JetStream was usable, as an old distribution ships it
  oldNatsDir = join(dir, 'old-bin');
  mkdirSync(oldNatsDir);
  writeFileSync(join(oldNatsDir, 'nats-server'), '#!/bin/sh\necho "nats-server: v2.1.4"\n');
  chmodSync(join(oldNatsDir, 'nats-server'), 0o755);
  base = { TIDEMARK_CONFIG: join(dir, 'tidemark.yaml'), TIDEMARK_HTTP_PORT: '0', TIDEMARK_CLICKHOUSE_HTTP_PORT: '0' };
});

afterAll(async () => {
  await new Promise((resolve) => held?.close(resolve));
  await plain?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const dataDir = (name: string) => join(dir, name);

/** Runs a command that must refuse to start: exit 2, one line on stderr, no stack trace, nothing on stdout. */
async function refusal(args: string[], env: Record<string, string>): Promise<string> {
  const run = spawnTidemarkCaptured(args, { ...base, ...env });
  await exited(run.child);
  const lines = run.stderr().trim().split('\n');
  expect(lines, run.stderr()).toHaveLength(1);
  expect(run.stderr()).not.toMatch(/^\s+at /m);
  expect(run.child.exitCode).toBe(2);
  return lines[0]!;
}

describe('start-up failures print one line that says what to do', () => {
  it('a role with nothing running says where it tries within a few seconds, and keeps saying it', async () => {
    const port = await freePort();
    const role = spawnTidemarkCaptured(['processor'], { ...base, TIDEMARK_DATA_DIR: dataDir('nothing'), TIDEMARK_NATS_PORT: String(port) });
    try {
      const line = `tidemark: cannot reach NATS at nats://127.0.0.1:${port} (connection refused); is \`tidemark up\` running? else set NATS_URL to your NATS server — retrying`;
      // ~2 s after the spawn on a quiet machine (node and tsx starting, then one refused attempt);
      // the deadline is for a loaded one
      await waitFor(() => role.stderr().includes(line), 60_000, 'the first notice');
      await waitFor(() => role.stderr().split(line).length - 1 >= 2, 60_000, 'a second notice');
      expect(role.child.exitCode).toBeNull();
      expect(role.stderr()).not.toMatch(/^\s+at /m);
    } finally {
      role.child.kill('SIGTERM');
      await exited(role.child);
    }
  }, 60_000);

  it('up refuses a NATS_URL server without JetStream', async () => {
    const line = await refusal(['up'], { NATS_URL: `nats://127.0.0.1:${plain.port}`, TIDEMARK_DATA_DIR: dataDir('js-url') });
    expect(line).toBe(`tidemark: JetStream is not enabled on the NATS server at nats://127.0.0.1:${plain.port} (NATS_URL): enable it (nats-server -js, or a jetstream {} block in its configuration), or unset NATS_URL so that \`tidemark up\` runs its own`);
  }, 60_000);

  it('a role finding a server without JetStream on the default port says it is not tidemark up\'s', async () => {
    const line = await refusal(['gateway'], { TIDEMARK_NATS_PORT: String(plain.port), TIDEMARK_DATA_DIR: dataDir('js-default') });
    expect(line).toContain(`the NATS server at nats://127.0.0.1:${plain.port} has JetStream disabled, so it is not one that \`tidemark up\` started`);
    expect(line).toContain('set NATS_URL');
  }, 60_000);

  it('up with the HTTP gateway port taken names the port and who holds it', async () => {
    const line = await refusal(['up'], { TIDEMARK_HTTP_PORT: String(heldPort), TIDEMARK_DATA_DIR: dataDir('http-port') });
    expect(line).toContain(`tidemark: port ${heldPort} on 127.0.0.1 (the HTTP gateway) is in use by another program (pid ${process.pid}: ${process.execPath} `);
    expect(line).toMatch(/\): stop it, or set TIDEMARK_HTTP_PORT to another port \(0 = any free port\)$/);
  }, 60_000);

  it('up with the embedded ClickHouse port taken says which setting moves it', async () => {
    const line = await refusal(['up'], { TIDEMARK_CLICKHOUSE_HTTP_PORT: String(heldPort), TIDEMARK_DATA_DIR: dataDir('ch-port') });
    expect(line).toContain(`port ${heldPort} on 127.0.0.1 (the embedded ClickHouse HTTP endpoint) is in use by another program (pid ${process.pid}`);
    expect(line).toContain('set TIDEMARK_CLICKHOUSE_HTTP_PORT');
  }, 60_000);

  it('up with nats-server missing says how to install it', async () => {
    const missing = await refusal(['up'], { PATH: join(dir, 'empty-path'), TIDEMARK_DATA_DIR: dataDir('missing') });
    expect(missing).toContain('nats-server was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install nats-server`');
  }, 60_000);

  it('up with nats-server too old says what it needs; --verbose adds the stack', async () => {
    const old = await refusal(['up'], { PATH: oldNatsDir, TIDEMARK_DATA_DIR: dataDir('old') });
    expect(old).toContain('nats-server 2.1.4 is too old (Tidemark needs 2.9.0 or later)');

    const verbose = spawnTidemarkCaptured(['up', '--verbose'], { ...base, PATH: oldNatsDir, TIDEMARK_DATA_DIR: dataDir('old') });
    await exited(verbose.child);
    expect(verbose.child.exitCode).toBe(2);
    expect(verbose.stderr().split('\n')[0]).toBe(old);
    expect(verbose.stderr()).toMatch(/^\s+at assertNatsServerUsable /m);
    expect(verbose.stderr()).toContain("code: 'NATS_SERVER_TOO_OLD'");
  }, 60_000);

  it('a role with CLICKHOUSE_URL pointing nowhere says so', async () => {
    const js = await (await import('../harness/nats.ts')).startTestNats();
    try {
      const nowhere = `http://127.0.0.1:${await freePort()}`;
      const line = await refusal(['processor'], { NATS_URL: js.url, CLICKHOUSE_URL: nowhere, TIDEMARK_DATA_DIR: dataDir('ch-url') });
      expect(line).toMatch(new RegExp(`^tidemark: cannot reach ClickHouse at ${nowhere} \\(.+\\): is it running\\? check CLICKHOUSE_URL, or unset it to use the embedded engine$`));
    } finally {
      await js.dispose();
    }
  }, 60_000);

  it('doctor on a broken set-up marks each problem with ✗ and its fix, and exits 1', async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const doctor = spawnTidemarkCaptured(['doctor'], {
      PATH: oldNatsDir,
      TIDEMARK_CONFIG: base.TIDEMARK_CONFIG!,
      NATS_URL: `nats://127.0.0.1:${plain.port}`,
      CLICKHOUSE_URL: nowhere,
      TIDEMARK_HTTP_PORT: String(heldPort),
      TIDEMARK_DATA_DIR: '/proc/tidemark-cannot-be-here',
    });
    await exited(doctor.child);
    const lines = doctor.stdout().trim().split('\n');
    expect(lines).toEqual([
      '✗ nats-server 2.1.4 is too old (2.9.0+ needed) — install a newer nats-server, or set NATS_URL to a JetStream server of that version',
      expect.stringMatching(/^✗ data directory \/proc\/tidemark-cannot-be-here is not writable \(E[A-Z]+\) — fix its permissions/),
      expect.stringMatching(/^[✓!] port 4222 \(embedded NATS\)/),
      expect.stringMatching(new RegExp(`^✗ port ${heldPort} \\(HTTP gateway\\) is held by another program \\(pid ${process.pid}: .+\\) — stop it, or set TIDEMARK_HTTP_PORT to another port \\(0 = any free port\\)$`)),
      `✗ NATS at nats://127.0.0.1:${plain.port} (NATS_URL) is nats-server 2.9.10 with JetStream disabled — enable JetStream there (nats-server -js), or unset NATS_URL and let \`tidemark up\` run its own`,
      expect.stringMatching(new RegExp(`^✗ cannot query ClickHouse at ${nowhere} \\(CLICKHOUSE_URL\\): .+ — start it, or correct CLICKHOUSE_URL`)),
      '! clock offset from the NATS server not measured (no JetStream server to ask)',
      '5 check(s) failed',
    ]);
    expect(doctor.child.exitCode).toBe(1);
  }, 60_000);

  it('doctor ends by itself when everything it asks never answers (a port that accepts and stays silent, a nats-server that hangs)', async () => {
    const stuckBin = join(dir, 'stuck-bin');
    mkdirSync(stuckBin, { recursive: true });
    // `exec`: the probe's kill reaches the sleeping process itself, so nothing is left behind.
    writeFileSync(join(stuckBin, 'nats-server'), '#!/bin/sh\nexec sleep 30\n');
    chmodSync(join(stuckBin, 'nats-server'), 0o755);
    const silent = `127.0.0.1:${heldPort}`;
    const started = Date.now();
    const doctor = spawnTidemarkCaptured(['doctor'], {
      PATH: stuckBin,
      TIDEMARK_CONFIG: base.TIDEMARK_CONFIG!,
      NATS_URL: `nats://${silent}`,
      CLICKHOUSE_URL: `http://${silent}`,
      TIDEMARK_NATS_PORT: String(heldPort),
      TIDEMARK_HTTP_PORT: String(heldPort),
      TIDEMARK_DATA_DIR: '/proc/tidemark-cannot-be-here',
    });
    await exited(doctor.child);
    const elapsed = Date.now() - started;
    const out = doctor.stdout();
    expect(out).toContain('✗ nats-server is not on PATH');
    expect(out).toMatch(/✗ data directory \/proc\/tidemark-cannot-be-here is not writable/);
    expect(out).toMatch(new RegExp(`✗ (cannot reach NATS at nats://${silent} \\(NATS_URL\\)|NATS: no answer within)`));
    expect(out).toMatch(new RegExp(`✗ (cannot query ClickHouse at http://${silent} \\(CLICKHOUSE_URL\\)|ClickHouse: no answer within)`));
    expect(out).toMatch(/check\(s\) failed\n$/);
    expect(doctor.child.exitCode).toBe(1);
    // Its bounds add up to about 11 s (see CHECK_MS); a loaded machine adds start-up time, not waits.
    expect(elapsed).toBeLessThan(25_000);
  }, 60_000);
});
