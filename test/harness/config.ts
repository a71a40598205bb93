import { parseConfig, type Config } from '../../src/core/config.ts';

/** A validated config for tests: the shipped defaults plus the given overrides, pointed at the test servers. */
export function testConfig(overrides: Record<string, unknown> = {}, env: Record<string, string> = {}): Config {
  return parseConfig(overrides, env, 'test config');
}
