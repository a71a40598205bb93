import { isIP } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Browser protections shared by every HTTP listener (the ClickHouse endpoint, the HTTP gateway,
 * the monitor's probes): a web page the operator happens to open must not be able to drive them.
 * - A request carrying an `Origin` is served only when that origin is allowed (configured, or the
 *   listener's own origin reached under a trusted host name); anything else gets 403. Browsers
 *   send `Origin` on every cross-origin POST and on CORS reads.
 * - A request a browser marks as coming from another site (`Sec-Fetch-Site: cross-site` or
 *   `same-site`: an `<img>`, a no-cors fetch, which carry no `Origin`) gets 403 too.
 * - On a loopback bind the `Host` header must name loopback (or a configured host): a page
 *   whose DNS name is rebound to 127.0.0.1 sends its own name as Host (DNS rebinding).
 * - No CORS headers unless configured, and then only for allowed origins.
 */
export type BrowserPolicy = {
  /** Origins (`scheme://host[:port]`) allowed to call this listener from a browser. */
  origins: readonly string[];
  /** Host names accepted in the Host header besides loopback ones (for a name that points here). */
  hosts: readonly string[];
  /** Answer allowed origins with CORS headers and preflights. */
  cors: boolean;
};

export const NO_BROWSERS: BrowserPolicy = { origins: [], hosts: [], cors: false };

/** Loopback names and addresses: 127.0.0.0/8, ::1 (also IPv4-mapped), localhost. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./.test(bare);
  return false;
}

/** The name part of a Host header (`[::1]:8123` → `[::1]`, `localhost:80` → `localhost`). */
function hostName(header: string): string {
  const value = header.trim().toLowerCase();
  if (value.startsWith('[')) return value.slice(0, value.indexOf(']') + 1);
  const colon = value.lastIndexOf(':');
  return colon >= 0 && value.indexOf(':') === colon ? value.slice(0, colon) : value;
}

/** `scheme://host[:port]` in the form browsers send, or undefined for anything else (`null`, garbage). */
export function normalizeOrigin(value: string): string | undefined {
  try {
    const url = new URL(value);
    return url.origin === 'null' ? undefined : url.origin;
  } catch {
    return undefined;
  }
}

export type GuardVerdict = { allowed: true; corsOrigin?: string } | { allowed: false; reason: string };

const first = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);

/** Judges one request against the policy of a listener bound to `bindHost`. */
export function judge(req: Pick<IncomingMessage, 'headers'>, bindHost: string, policy: BrowserPolicy): GuardVerdict {
  const host = first(req.headers.host);
  const extraHosts = new Set(policy.hosts.map((h) => h.toLowerCase()));
  const trustedHost = host !== undefined && (isLoopback(hostName(host)) || extraHosts.has(hostName(host)));
  if (isLoopback(bindHost) && host !== undefined && !trustedHost) {
    return { allowed: false, reason: `Host ${JSON.stringify(host)} is not a loopback name: this listener is bound to ${bindHost} (DNS rebinding guard; add the name to browser.hosts to allow it)` };
  }
  const originHeader = first(req.headers.origin);
  if (originHeader === undefined) {
    const site = first(req.headers['sec-fetch-site'])?.toLowerCase();
    if (site === 'cross-site' || site === 'same-site') return { allowed: false, reason: 'a request from another site without an allowed Origin' };
    return { allowed: true };
  }
  const origin = normalizeOrigin(originHeader);
  const sameOrigin = origin !== undefined && trustedHost && new URL(origin).host === host!.trim().toLowerCase();
  if (origin === undefined || !(sameOrigin || policy.origins.includes(origin))) {
    return { allowed: false, reason: `Origin ${JSON.stringify(originHeader)} is not allowed (browser.origins)` };
  }
  return policy.cors && !sameOrigin ? { allowed: true, corsOrigin: origin } : { allowed: true };
}

/**
 * Applies the policy to a request: answers it itself (403, or a CORS preflight) and returns
 * true, or sets what CORS headers apply and returns false for the server to go on.
 */
export function guardRequest(req: IncomingMessage, res: ServerResponse, bindHost: string, policy: BrowserPolicy): boolean {
  const verdict = judge(req, bindHost, policy);
  if (!verdict.allowed) {
    const body = `Forbidden: ${verdict.reason}\n`;
    res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), vary: 'Origin' });
    res.end(body);
    return true;
  }
  if (verdict.corsOrigin === undefined) return false;
  res.setHeader('access-control-allow-origin', verdict.corsOrigin);
  res.setHeader('vary', 'Origin');
  if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
    res.writeHead(204, {
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': first(req.headers['access-control-request-headers']) ?? '',
      'access-control-max-age': '600',
    });
    res.end();
    return true;
  }
  return false;
}
