import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const uplotDir = join(dirname(createRequire(import.meta.url).resolve('uplot')), '..', 'dist');

/** Every file the page consists of, by its path under /ui: plain ES modules and CSS, nothing to build; uPlot from node_modules. */
const FILES: Record<string, { file: string; type: string }> = {
  '/ui': { file: join(here, 'public', 'index.html'), type: 'text/html; charset=utf-8' },
  '/ui/': { file: join(here, 'public', 'index.html'), type: 'text/html; charset=utf-8' },
  '/ui/app.js': { file: join(here, 'public', 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/ui/timeline.js': { file: join(here, 'public', 'timeline.js'), type: 'text/javascript; charset=utf-8' },
  '/ui/format.js': { file: join(here, 'public', 'format.js'), type: 'text/javascript; charset=utf-8' },
  '/ui/style.css': { file: join(here, 'public', 'style.css'), type: 'text/css; charset=utf-8' },
  '/ui/vendor/uPlot.iife.min.js': { file: join(uplotDir, 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/ui/vendor/uPlot.min.css': { file: join(uplotDir, 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

/** Only this origin's scripts, styles and API; never framed (clickjacking); uPlot sets styles from script, which CSP allows. */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

export const isUiFile = (path: string): boolean => Object.hasOwn(FILES, path);

/** Serves one of the page's files; `head` answers the headers only. */
export async function serveUiFile(res: ServerResponse, path: string, head: boolean): Promise<void> {
  const entry = FILES[path]!;
  const body = await readFile(entry.file);
  res.writeHead(200, { 'content-type': entry.type, 'content-length': String(body.length), ...SECURITY_HEADERS });
  res.end(head ? undefined : body);
}
