import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/**
 * Headless Chromium for the page tests: TIDEMARK_CHROMIUM, else Debian's `chromium` package
 * (installed by .ci/run and scripts/bootstrap.sh). Missing, the test fails saying how to install
 * it: a browser test that skips itself would pass without having looked at anything.
 */
export async function launchChromium(): Promise<Browser> {
  const candidates = [process.env.TIDEMARK_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => Boolean(p));
  const executablePath = candidates.find((p) => existsSync(p));
  if (!executablePath) throw new Error('no Chromium found: apt-get install chromium (Debian), or set TIDEMARK_CHROMIUM to its binary');
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
  return chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'], timeout: 60_000 });
}
