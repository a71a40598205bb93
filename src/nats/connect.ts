import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection, type ConnectionOptions } from '@nats-io/transport-node';
import type { Config } from '../core/config.ts';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';

/** `NATS_URL` may list several servers of a cluster, comma-separated, as the nats CLI takes them. */
export const serverList = (url: string): string[] => url.split(',').map((s) => s.trim()).filter((s) => s.length > 0);

/**
 * Connects with the credentials and TLS settings of SPEC §9 to any server of the list,
 * and reconnects forever, to whichever server answers, so a restart or the loss of one
 * cluster node is survived. The jitter keeps every role of a cluster from reconnecting
 * in the same instant.
 */
export async function connectNats(config: Config, url: string, name = 'tidemark', waitOnFirstConnect = true): Promise<NatsConnection> {
  const { nats } = config;
  const options: ConnectionOptions = {
    servers: serverList(url),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 250,
    reconnectJitterTLS: 1_000,
    waitOnFirstConnect,
    // a first attempt that fails must fail soon enough to say so (connection refused is instant)
    ...(waitOnFirstConnect ? {} : { timeout: 5_000 }),
    // an async stack trace is an Error allocated per request: a fifth of a busy role's CPU
    noAsyncTraces: true,
  };
  if (nats.user) {
    options.user = nats.user;
    options.pass = nats.password;
  }
  if (nats.token) options.token = nats.token;
  if (nats.creds) options.authenticator = credsAuthenticator(readFileSync(nats.creds));
  if (nats.tls) {
    options.tls = {
      ...(nats.tls.ca ? { caFile: nats.tls.ca } : {}),
      ...(nats.tls.cert ? { certFile: nats.tls.cert } : {}),
      ...(nats.tls.key ? { keyFile: nats.tls.key } : {}),
    };
  }
  return connect(options);
}

const NOTICE_EVERY_MS = 5_000;
const RETRY_EVERY_MS = 1_000;

/** Node's codes for a server certificate that does not verify: the same certificate comes back on every retry. */
const UNTRUSTED_CERTIFICATE = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Reasons no retry will fix: the server answered and said no, or showed a certificate we cannot trust. */
function fatal(err: Error, url: string): TidemarkError | undefined {
  if (UNTRUSTED_CERTIFICATE.has((err as NodeJS.ErrnoException).code ?? '')) {
    return new TidemarkError(ErrorCodes.NATS_TLS_UNTRUSTED, `the NATS server at ${url} presented a TLS certificate we do not trust (${err.message}): set nats.tls.ca to the CA that signed it, and connect by a host name the certificate names`, { cause: err });
  }
  if (err.name === 'AuthorizationError' || err.name === 'UserAuthenticationExpiredError') {
    return new TidemarkError(ErrorCodes.NATS_AUTH_FAILED, `the NATS server at ${url} refused our credentials (${err.message}): check NATS_USER/NATS_PASSWORD, NATS_TOKEN or NATS_CREDS`, { cause: err });
  }
  if (err.name === 'InvalidArgumentError') {
    return new TidemarkError(ErrorCodes.CONFIG_INVALID, `NATS_URL "${url}" is not usable: ${err.message}`, { cause: err });
  }
  return undefined;
}

/**
 * Like connectNats, but while the server cannot be reached it calls `onWait` with the reason
 * at once and then every few seconds, instead of waiting in silence; once connected, the
 * connection reconnects forever as usual.
 */
export async function connectWhenReachable(config: Config, url: string, name: string, onWait: (reason: string) => void): Promise<NatsConnection> {
  let lastNotice = 0;
  for (;;) {
    try {
      return await connectNats(config, url, name, false);
    } catch (err) {
      const stop = fatal(err as Error, url);
      if (stop) throw stop;
      if (Date.now() - lastNotice >= NOTICE_EVERY_MS) {
        lastNotice = Date.now();
        onWait((err as Error).message || (err as Error).name);
      }
      await new Promise((r) => setTimeout(r, RETRY_EVERY_MS));
    }
  }
}
