import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig, resolveConfigPath } from '../../src/core/config.ts';
import { isTidemarkError } from '../../src/core/errors.ts';
import { bucketSpecs } from '../../src/nats/buckets.ts';

const failure = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
};

describe('configuration', () => {
  it('loads the shipped example as SPEC §9 describes it', () => {
    const config = loadConfig('config/tidemark.yaml', {});
    const revenue = config.reports.find((r) => r.name === 'revenue')!;
    expect(revenue).toMatchObject({ types: ['sale'], timeZone: 'Asia/Taipei', groupBy: ['source'], close: { after: 3 * 86_400_000 }, windows: [{ size: 3_600_000, slide: 300_000 }] });
    expect(revenue.measures).toEqual({ amount: { fn: 'sum', field: 'amount' }, orders: { fn: 'count' } });
    expect(config.slas[0]).toMatchObject({ source: '*', type: '*', maxDelay: 3_600_000 });
    expect(config.dataDir).toBe('.tidemark');
    expect(config.nats.url).toBeUndefined();
    expect(config.clickhouse.database).toBe('tidemark');
  });

  it('gives every stream and bucket of the shipped production shape three replicas, and lets one object override', () => {
    const config = loadConfig('config/production.yaml', {});
    expect(config.nats.replicas).toBe(3);
    expect(Object.values(config.nats.streams).map((s) => s.replicas ?? config.nats.replicas)).toEqual([3, 3, 3, 3]);
    expect(config.sagas.stream.replicas ?? config.nats.replicas).toBe(3);
    expect(bucketSpecs(config).map((b) => b.replicas)).toEqual([3, 3, 3, 3, 3, 3, 3]);
    const mixed = parseConfig({ nats: { replicas: 3, buckets: { leases: { replicas: 5 } } } });
    expect(bucketSpecs(mixed).find((b) => b.name === 'tidemark_leases')?.replicas).toBe(5);
    expect(bucketSpecs(parseConfig({})).every((b) => b.replicas === 1)).toBe(true);
  });

  it('takes the environment names of SPEC §9 over the file', () => {
    const config = loadConfig('config/tidemark.yaml', {
      NATS_URL: 'nats://n:4222', NATS_USER: 'u', NATS_PASSWORD: 'p', CLICKHOUSE_URL: 'http://c:8123', CLICKHOUSE_DATABASE: 'other',
      TIDEMARK_DATA_DIR: '/data', TIDEMARK_HTTP_PORT: '9090', TIDEMARK_HTTP_HOST: '0.0.0.0',
    });
    expect(config).toMatchObject({ dataDir: '/data', nats: { url: 'nats://n:4222', user: 'u', password: 'p' }, clickhouse: { url: 'http://c:8123', database: 'other' }, http: { port: 9090, host: '0.0.0.0' } });
    expect(failure(() => parseConfig({}, { TIDEMARK_HTTP_PORT: 'eighty' })).message).toMatch(/TIDEMARK_HTTP_PORT: "eighty" is not an integer/);
  });

  it('names every bad key and says why', () => {
    const error = failure(() => parseConfig({
      ingest: { maxFutureSkew: '5 minutes' },
      reports: [{ name: 'Revenue', types: [], measures: { total: { fn: 'median', field: 'x' } }, windows: [{ size: '1h', slide: '7m' }], colour: 'red' }],
    }, {}, 'tidemark.yaml'));
    expect(isTidemarkError(error, 'CONFIG_INVALID')).toBe(true);
    expect(error.message).toContain('invalid configuration in tidemark.yaml');
    expect(error.message).toContain('ingest.maxFutureSkew: "5 minutes" is not a duration');
    expect(error.message).toContain('reports[0].name: lower-case letters, digits and _ only');
    expect(error.message).toMatch(/reports\[0\]\.types: .*/);
    expect(error.message).toMatch(/reports\[0\]\.measures\.total\.fn: .*"count"/);
    expect(error.message).toContain('reports[0].windows[0]: size must be a positive multiple of slide');
    expect(error.message).toContain('reports[0].colour: unknown key');
  });

  it('takes a processor for dead after 30 s of silence unless told otherwise, never after less than 5 s', () => {
    expect(parseConfig({}).processor.liveness).toBe(30_000);
    expect(parseConfig({ processor: { liveness: '12s', idleTimeout: '1s' } }).processor).toMatchObject({ liveness: 12_000, idleTimeout: 1_000 });
    expect(failure(() => parseConfig({ processor: { liveness: '4s' } })).message).toContain('processor.liveness: must be at least 5s');
  });

  it('finds the file by flag, then TIDEMARK_CONFIG, then the default, and says when it is missing', () => {
    expect(resolveConfigPath('a.yaml', { TIDEMARK_CONFIG: 'b.yaml' })).toBe('a.yaml');
    expect(resolveConfigPath(undefined, { TIDEMARK_CONFIG: 'b.yaml' })).toBe('b.yaml');
    expect(resolveConfigPath(undefined, {})).toBe('config/tidemark.yaml');
    expect(isTidemarkError(failure(() => loadConfig('nope.yaml', {})), 'CONFIG_NOT_FOUND')).toBe(true);
  });
});
