import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection, type ConnectionOptions } from '@nats-io/transport-node';
import type { Config } from '../core/config.ts';

/** Connects with the credentials and TLS settings of SPEC §9; reconnects forever so a NATS restart is survived. */
export async function connectNats(config: Config, url: string, name = 'tidemark'): Promise<NatsConnection> {
  const { nats } = config;
  const options: ConnectionOptions = {
    servers: url,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
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
