import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useFixture } from './fixture.ts';

export type ConfigDir = { dir: string; configFile: string; dispose: () => Promise<void> };

/** A temp directory of the test's own holding `settings` as a config file, for processes started with `--config`; `dispose` deletes it. */
export function writeConfigDir(settings: Record<string, unknown>, prefix: string): ConfigDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const configFile = join(dir, 'tidemark.yaml');
  writeFileSync(configFile, JSON.stringify(settings));
  return { dir, configFile, dispose: async () => rmSync(dir, { recursive: true, force: true }) };
}

/** writeConfigDir for the whole test file (see useFixture); `settings` may be a function, to name servers an earlier fixture started. */
export const useConfigDir = (settings: Record<string, unknown> | (() => Record<string, unknown>), prefix: string): ConfigDir =>
  useFixture(async () => writeConfigDir(typeof settings === 'function' ? settings() : settings, prefix));
