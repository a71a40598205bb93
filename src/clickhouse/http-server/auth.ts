import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { isLoopback } from '../../core/http-guard.ts';
import { CH, ClickHouseHttpError, ClickHouseServerError, ServerErrorCodes } from './errors.ts';

/** A user of the endpoint. A `readonly` user may only read (SELECT, SHOW, DESCRIBE, EXISTS, EXPLAIN, WITH). */
export type HttpUser = { name: string; password?: string; readonly?: boolean };

type StoredUser = { name: string; digest: Buffer; readonly: boolean };

export type Credentials = { user: string; password: string; supplied: boolean };

/** With no users configured, ClickHouse's out-of-the-box `default` user with an empty password. */
const DEFAULT_USERS: HttpUser[] = [{ name: 'default', password: '' }];

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

export class UserDirectory {
  readonly #users = new Map<string, StoredUser>();

  constructor(users: ReadonlyArray<HttpUser> = []) {
    for (const user of users.length > 0 ? users : DEFAULT_USERS) {
      if (!user.name || this.#users.has(user.name)) {
        throw new ClickHouseServerError(ServerErrorCodes.INVALID_USERS, `user names must be non-empty and unique (got ${JSON.stringify(user.name)})`);
      }
      // Only digests are kept, and compared in constant time.
      this.#users.set(user.name, { name: user.name, digest: sha256(user.password ?? ''), readonly: user.readonly ?? false });
    }
  }

  /** True when some user can log in with an empty password. */
  get anyWithoutPassword(): boolean {
    const empty = sha256('');
    return [...this.#users.values()].some((u) => timingSafeEqual(u.digest, empty));
  }

  /** The user these credentials prove, or ClickHouse's AUTHENTICATION_FAILED (401 when none were sent). */
  authenticate(credentials: Credentials): { name: string; readonly: boolean } {
    const user = this.#users.get(credentials.user);
    const digest = sha256(credentials.password);
    // Compare against something even for an unknown name so timing does not reveal which names exist.
    const matches = timingSafeEqual(user?.digest ?? sha256('\0unknown'), digest);
    if (matches && user) return { name: user.name, readonly: user.readonly };
    throw new ClickHouseHttpError(
      CH.AUTHENTICATION_FAILED,
      `${credentials.user}: Authentication failed: password is incorrect, or there is no user with such name`,
      credentials.supplied ? {} : { httpStatus: 401, headers: { 'WWW-Authenticate': 'Basic realm="ClickHouse", charset="UTF-8"' } },
    );
  }
}

const multipleMethods = (a: string, b: string) =>
  new ClickHouseHttpError(CH.AUTHENTICATION_FAILED, `Invalid authentication: it is not allowed to use ${a} and ${b} simultaneously`);

/**
 * The three ways ClickHouse accepts credentials over HTTP — X-ClickHouse-User/Key headers, Basic
 * auth, `user`/`password` URL parameters — and its rule that they may not be mixed.
 */
export function extractCredentials(headers: IncomingHttpHeaders, params: ReadonlyMap<string, string>): Credentials {
  const headerUser = headerValue(headers['x-clickhouse-user']);
  const headerKey = headerValue(headers['x-clickhouse-key']);
  const authorization = headerValue(headers.authorization);
  const inParams = params.has('user') || params.has('password');
  if (headerUser || headerKey) {
    if (authorization) throw multipleMethods('X-ClickHouse HTTP headers', 'Authorization HTTP header');
    if (inParams) throw multipleMethods('X-ClickHouse HTTP headers', 'authentication via parameters');
    if (!headerUser) throw new ClickHouseHttpError(CH.AUTHENTICATION_FAILED, 'Got an empty user name from X-ClickHouse HTTP headers');
    return { user: headerUser, password: headerKey ?? '', supplied: true };
  }
  if (authorization) {
    if (inParams) throw multipleMethods('Authorization HTTP header', 'authentication via parameters');
    const [scheme, info = ''] = authorization.trim().split(/\s+/, 2);
    if (scheme?.toLowerCase() !== 'basic') {
      throw new ClickHouseHttpError(CH.AUTHENTICATION_FAILED, `Invalid authentication: '${scheme}' HTTP Authorization scheme is not supported`);
    }
    const decoded = Buffer.from(info, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = colon < 0 ? decoded : decoded.slice(0, colon);
    if (!user) throw new ClickHouseHttpError(CH.AUTHENTICATION_FAILED, 'Got an empty user name from Authorization HTTP header');
    return { user, password: colon < 0 ? '' : decoded.slice(colon + 1), supplied: true };
  }
  const user = params.get('user') ?? 'default';
  if (!user) throw new ClickHouseHttpError(CH.AUTHENTICATION_FAILED, 'Got an empty user name from authentication via parameters');
  return { user, password: params.get('password') ?? '', supplied: inParams };
}

const headerValue = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value) || undefined;

/** Anything reachable from another machine must require a password from every user. */
export function assertSafeBind(host: string, users: UserDirectory): void {
  if (isLoopback(host) || !users.anyWithoutPassword) return;
  throw new ClickHouseServerError(
    ServerErrorCodes.INSECURE_BIND,
    `refusing to serve ClickHouse on ${host}: it is not a loopback address and a user has no password (set a password on every user, or bind 127.0.0.1)`,
  );
}
