import { defineConfig } from 'vitest/config';

// chDB crashes when loaded in more than one thread of a process, so every test
// file runs in its own forked process (one embedded ClickHouse per process).
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    // waits across the suite allow 60 s for a condition (a loaded 2-core machine): a test must outlive them
    testTimeout: 120_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
  },
});
