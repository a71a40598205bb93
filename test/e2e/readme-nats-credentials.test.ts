import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNats } from '../../src/cli/runtime.ts';
import { parseConfig } from '../../src/core/config.ts';
import { isTidemarkError } from '../../src/core/errors.ts';
import { startSecuredNats, type SecuredNats } from '../harness/secured-nats.ts';
import { exited, spawnTidemarkCaptured } from '../harness/processes.ts';
import { mintOperator } from '../support/nats-jwt.ts';

// README, Configuration: `NATS_URL`; credentials `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`,
// `NATS_CREDS`; `nats.tls.{ca,cert,key}`. Troubleshooting: `the NATS server at … refused our
// credentials`. Each kind against a nats-server configured for it: the wrong one is refused
// with that line, the right one connects and creates the streams, as every role does at start.
const logger = pino({ level: 'silent' });
let dir: string;
const servers: SecuredNats[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tidemark-nats-creds-'));
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.dispose()));
  rmSync(dir, { recursive: true, force: true });
});

const start = async (extra: (dir: string) => string): Promise<SecuredNats> => {
  const server = await startSecuredNats(extra);
  servers.push(server);
  return server;
};

/** What a role does at start (runtime.openNats): connect with the config's credentials, then ensure the topology. */
async function connectWith(settings: Record<string, unknown>, env: Record<string, string>): Promise<string[]> {
  const nats = await openNats(parseConfig(settings, env, 'test'), logger, { embedded: false, name: 'credentials-test' });
  try {
    const streams: string[] = [];
    for await (const info of nats.jsm.streams.list()) streams.push(info.config.name);
    return streams.sort();
  } finally {
    await nats.close();
  }
}

async function refusal(settings: Record<string, unknown>, env: Record<string, string>): Promise<Error> {
  const error = await connectWith(settings, env).then(() => undefined, (err: unknown) => err as Error);
  if (!error) throw new Error('the wrong credential was accepted');
  return error;
}

const TOPOLOGY = ['DLQ', 'EVENTS', 'INGEST', 'KV_tidemark_daily'];

describe('NATS credentials, each against a server configured for it', () => {
  it('NATS_TOKEN', async () => {
    const server = await start(() => 'authorization { token: "s3cret-token" }');
    const wrong = await refusal({}, { NATS_URL: server.url, NATS_TOKEN: 'not-the-token' });
    expect(isTidemarkError(wrong, 'NATS_AUTH_FAILED')).toBe(true);
    expect(wrong.message).toContain(`the NATS server at ${server.url} refused our credentials`);
    expect(await refusal({}, { NATS_URL: server.url })).toMatchObject({ code: 'NATS_AUTH_FAILED' });
    expect(await connectWith({}, { NATS_URL: server.url, NATS_TOKEN: 's3cret-token' })).toEqual(expect.arrayContaining(TOPOLOGY));
  }, 60_000);

  it('NATS_USER and NATS_PASSWORD, also as a process: tidemark init prints one line and exits 2, then succeeds', async () => {
    const server = await start(() => 'authorization { users: [{ user: "tidemark", password: "pa55-word" }] }');
    const wrong = await refusal({}, { NATS_URL: server.url, NATS_USER: 'tidemark', NATS_PASSWORD: 'wrong' });
    expect(isTidemarkError(wrong, 'NATS_AUTH_FAILED')).toBe(true);

    const env = { NATS_URL: server.url, NATS_USER: 'tidemark', TIDEMARK_DATA_DIR: join(dir, 'init-data'), TIDEMARK_CONFIG: join(dir, 'none.yaml') };
    writeFileSync(env.TIDEMARK_CONFIG, '{}');
    const refused = spawnTidemarkCaptured(['init'], { ...env, NATS_PASSWORD: 'wrong' });
    await exited(refused.child);
    expect(refused.child.exitCode).toBe(2);
    expect(refused.stderr().trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^tidemark: the NATS server at ${server.url} refused our credentials \\(.*\\): check NATS_USER/NATS_PASSWORD`))]);

    const init = spawnTidemarkCaptured(['init'], { ...env, NATS_PASSWORD: 'pa55-word' });
    await exited(init.child);
    expect(init.stderr()).toBe('');
    expect(init.child.exitCode).toBe(0);
    expect(init.stdout()).toMatch(/^stream\s+EVENTS\s+created/m);
    expect(init.stdout()).toContain(`topology ready on ${server.url}`);
    expect(await connectWith({}, { NATS_URL: server.url, NATS_USER: 'tidemark', NATS_PASSWORD: 'pa55-word' })).toEqual(expect.arrayContaining(TOPOLOGY));
  }, 120_000);

  it('NATS_CREDS on a server in operator mode (JWT, resolver MEMORY)', async () => {
    const { operator, creds, strangerCreds } = mintOperator();
    const server = await start((serverDir) => {
      writeFileSync(join(serverDir, 'operator.jwt'), operator.jwt);
      const preload = Object.entries(operator.accounts).map(([account, jwt]) => `  ${account}: "${jwt}"`).join('\n');
      return `operator: "${join(serverDir, 'operator.jwt')}"\nsystem_account: ${operator.systemAccount}\nresolver: MEMORY\nresolver_preload: {\n${preload}\n}`;
    });
    writeFileSync(join(dir, 'user.creds'), creds);
    writeFileSync(join(dir, 'stranger.creds'), strangerCreds);
    const wrong = await refusal({}, { NATS_URL: server.url, NATS_CREDS: join(dir, 'stranger.creds') });
    expect(isTidemarkError(wrong, 'NATS_AUTH_FAILED')).toBe(true);
    expect(wrong.message).toContain('refused our credentials');
    expect(await connectWith({}, { NATS_URL: server.url, NATS_CREDS: join(dir, 'user.creds') })).toEqual(expect.arrayContaining(TOPOLOGY));
  }, 60_000);

  it('TLS: a server certificate from an unknown CA is refused at once with one line; with nats.tls (CA, client certificate) it connects', async () => {
    const pki = join(dir, 'pki');
    makeCertificates(pki);
    const server = await start(() => `tls { cert_file: "${pki}/server.pem", key_file: "${pki}/server.key", ca_file: "${pki}/ca.pem", verify: true }`);
    // nats.js checks the certificate against the host name it dialled, never an IP address: connect by name
    const url = `nats://localhost:${server.port}`;
    const untrusted = await refusal({}, { NATS_URL: url });
    expect(isTidemarkError(untrusted, 'NATS_TLS_UNTRUSTED')).toBe(true);
    expect(untrusted.message).toContain(`the NATS server at ${url} presented a TLS certificate we do not trust`);
    expect(untrusted.message).toContain('set nats.tls.ca');
    const tls = { ca: `${pki}/ca.pem`, cert: `${pki}/client.pem`, key: `${pki}/client.key` };
    expect(await connectWith({ nats: { tls } }, { NATS_URL: url })).toEqual(expect.arrayContaining(TOPOLOGY));
  }, 60_000);
});

/** A CA, a server certificate for localhost and a client certificate, with openssl. */
function makeCertificates(pki: string): void {
  execFileSync('mkdir', ['-p', pki]);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: pki, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  writeFileSync(join(pki, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=tidemark-test-ca');
  for (const [name, ext] of [['server', ['-extfile', 'server.ext']], ['client', []]] as const) {
    ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=tidemark-test-${name}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', ...ext);
  }
}
