import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerAuthorized } from '../ingest/http/auth.ts';
import { sendJson } from '../ingest/http/respond.ts';
import { handleUiApi, type UiApiDeps } from './api.ts';
import { isUiFile, serveUiFile } from './static.ts';

export const isUiPath = (path: string): boolean => path === '/ui' || path.startsWith('/ui/');

/**
 * `/ui` on the HTTP gateway: the page's files (no figures in them) to anyone the browser guard
 * lets through, and its JSON API under the gateway's bearer token when one is configured (the
 * page asks for it and sends it as `Authorization: Bearer`). Reads only: GET and HEAD.
 */
export async function handleUi(req: IncomingMessage, res: ServerResponse, url: URL, deps: UiApiDeps): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: `${url.pathname} accepts GET only` }, { allow: 'GET, HEAD' });
  if (url.pathname.startsWith('/ui/api/')) {
    const token = deps.config.http.token;
    if (token && !bearerAuthorized(req.headers.authorization, token)) {
      return sendJson(res, 401, { error: 'missing or wrong bearer token' }, { 'www-authenticate': 'Bearer' });
    }
    return handleUiApi(res, url, deps);
  }
  if (!isUiFile(url.pathname)) return sendJson(res, 404, { error: `no route ${url.pathname}` });
  return serveUiFile(res, url.pathname, req.method === 'HEAD');
}
