import { createHash } from 'node:crypto';
import { nkeys } from '@nats-io/transport-node';

type KeyPair = ReturnType<typeof nkeys.createOperator>;

/**
 * NATS decentralised auth (operator → account → user) written by hand, as `nsc` would:
 * a JWT is `base64url(header).base64url(claims).base64url(ed25519 signature)` signed by
 * the issuer's nkey. Kept here, not in src/: only the tests need to mint credentials.
 */
const b64url = (bytes: Uint8Array | string): string => Buffer.from(bytes).toString('base64url');

function sign(issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }));
  const claims: Record<string, unknown> = { iat: Math.floor(Date.now() / 1000), iss: issuer.getPublicKey(), name, sub: subject, nats: { ...nats, version: 2 } };
  claims.jti = createHash('sha256').update(JSON.stringify(claims)).digest('base64url');
  const body = `${header}.${b64url(JSON.stringify(claims))}`;
  return `${body}.${b64url(issuer.sign(new TextEncoder().encode(body)))}`;
}

export type Operator = { jwt: string; systemAccount: string; accounts: Record<string, string> };

/** An operator with a system account and one account allowed JetStream, a user of it, and a user of an account the server does not know. */
export function mintOperator(): { operator: Operator; creds: string; strangerCreds: string } {
  const operator = nkeys.createOperator();
  const account = nkeys.createAccount();
  const user = nkeys.createUser();
  const unlimited = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };
  const accountJwt = sign(operator, account.getPublicKey(), 'tidemark', { type: 'account', limits: unlimited, default_permissions: { pub: {}, sub: {} } });
  const userJwt = sign(account, user.getPublicKey(), 'tidemark-user', { type: 'user', pub: {}, sub: {}, subs: -1, data: -1, payload: -1 });
  // JetStream in operator mode needs a system account
  const system = nkeys.createAccount();
  const systemJwt = sign(operator, system.getPublicKey(), 'SYS', { type: 'account', limits: { ...unlimited, mem_storage: 0, disk_storage: 0, streams: 0, consumer: 0 }, default_permissions: { pub: {}, sub: {} } });
  const stranger = nkeys.createAccount();
  const strangerUser = nkeys.createUser();
  const strangerJwt = sign(stranger, strangerUser.getPublicKey(), 'stranger', { type: 'user', pub: {}, sub: {}, subs: -1, data: -1, payload: -1 });
  return {
    operator: {
      jwt: sign(operator, operator.getPublicKey(), 'test-operator', { type: 'operator', system_account: system.getPublicKey() }),
      systemAccount: system.getPublicKey(),
      accounts: { [account.getPublicKey()]: accountJwt, [system.getPublicKey()]: systemJwt },
    },
    creds: credsFile(userJwt, user),
    strangerCreds: credsFile(strangerJwt, strangerUser),
  };
}

const credsFile = (jwt: string, user: KeyPair): string =>
  `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${new TextDecoder().decode(user.getSeed())}\n------END USER NKEY SEED------\n`;
