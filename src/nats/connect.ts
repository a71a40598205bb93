import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection, type ConnectionOptions } from '@nats-io/transport-node';
import type { Config } from '../core/config.ts';

/** `NATS_URL` may list several servers of a cluster, comma-separated, as the nats CLI takes them. */
export const serverList = (url: string): string[] => url.split(',').map((s) => s.trim()).filter((s) => s.length > 0);

/**
 * Connects with the credentials and TLS settings of SPEC §9 to any server of the list,
 * and reconnects forever, to whichever server answers, so a restart or the loss of one
 * cluster node is survived. The jitter keeps every role of a cluster from reconnecting
 * in the same instant.
 */
export async function connectNats(config: Config, url: string, name = 'tidemark'): Promise<NatsConnection> {
  const { nats } = config;
  const options: ConnectionOptions = {
    servers: serverList(url),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 250,
    reconnectJitterTLS: 1_000,
    waitOnFirstConnect: true,
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
