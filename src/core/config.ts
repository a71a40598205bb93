import { readFileSync, existsSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { ErrorCodes, TidemarkError } from './errors.ts';

/** A duration written as "5m", "1h", "3d" (or a number of milliseconds); parsed to milliseconds. */
const Duration = z.union([z.number().int().nonnegative(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration (use e.g. 500ms, 30s, 5m, 1h, 3d)` });
    return z.NEVER;
  }
  return ms;
});

const isTimeZone = (tz: string): boolean => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
};
const TimeZone = z.string().refine(isTimeZone, { message: 'not an IANA time zone (e.g. Asia/Taipei, UTC)' });

const StreamLimits = z.strictObject({
  maxAge: Duration.describe('how long the stream keeps a message'),
  maxBytes: z.number().int().default(-1).describe('stream size cap in bytes, -1 for none'),
  duplicateWindow: Duration.default(120_000).describe('Nats-Msg-Id dedup window; must cover the longest retry'),
  replicas: z.number().int().min(1).max(5).default(1),
});

const Measure = z.strictObject({
  fn: z.enum(['count', 'sum', 'min', 'max', 'avg', 'uniq']),
  field: z.string().min(1).optional().describe('a data field; required for every fn but count'),
}).refine((m) => m.fn === 'count' || m.field !== undefined, { message: 'field is required unless fn is count', path: ['field'] });

const Window = z.strictObject({
  size: Duration,
  slide: Duration,
}).refine((w) => w.size > 0 && w.slide > 0 && w.size % w.slide === 0, { message: 'size must be a positive multiple of slide' });

const Report = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_]*$/, 'lower-case letters, digits and _ only'),
  types: z.array(z.string().min(1)).min(1),
  timeZone: TimeZone.default('UTC'),
  groupBy: z.array(z.string().min(1)).default([]).describe('envelope fields (source, type, key) or data.<field>'),
  measures: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/), Measure),
  close: z.strictObject({ after: Duration.default(3 * 86_400_000) }).prefault({}),
  coalesce: Duration.default(1_000).describe('late events within this interval become one revision'),
  windows: z.array(Window).default([]),
  allowedLateness: Duration.default(0).describe('realtime windows accept events this late before closing'),
});

const Sla = z.strictObject({
  source: z.string().default('*').describe('glob over the event source'),
  type: z.string().default('*'),
  maxDelay: Duration.optional(),
  expect: z.strictObject({
    every: Duration.optional(),
    dailyBy: z.string().regex(/^\d{2}:\d{2}$/).optional().describe('day D data by D+1 at HH:MM in timeZone'),
    timeZone: TimeZone.default('UTC'),
  }).optional(),
});

const EventTypes = z.array(z.string().min(1));

const Backoff = z.strictObject({
  initial: Duration.default(200).describe('wait before the second attempt'),
  factor: z.number().min(1).default(2).describe('each further wait is this many times the one before'),
  max: Duration.default(30_000),
});

/** A mapping whose "$input.x", "$steps.<step>.x", "$failure.x" or "$sagaId" strings are filled in (TypeScript definitions may pass a function). */
const Payload = z.unknown().default({}).describe('the command body');

const SagaCompensation = z.strictObject({
  command: z.string().min(1).describe('subject under saga.cmd.'),
  payload: Payload,
  success: EventTypes.min(1).describe('reply types meaning the step is undone'),
  failure: EventTypes.default([]).describe('reply types meaning the undo failed (retried, then parked)'),
  timeout: Duration.default(30_000),
});

const SagaStep = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_]*$/, 'lower-case letters, digits and _ only'),
  command: z.string().min(1).describe('subject under saga.cmd.'),
  payload: Payload,
  success: EventTypes.min(1).describe('reply types meaning the step is done'),
  failure: EventTypes.default([]).describe('reply types meaning the step failed'),
  timeout: Duration.default(30_000),
  retry: z.strictObject({
    attempts: z.number().int().min(1).default(1).describe('attempts in all, the first included'),
    backoff: Backoff.prefault({}),
    retryable: EventTypes.default([]).describe('failure types worth another attempt; any other failure compensates at once'),
    onTimeout: z.enum(['retry', 'compensate']).default('retry'),
  }).prefault({}),
  compensation: SagaCompensation.optional(),
});

const SagaDefinition = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_]*$/, 'lower-case letters, digits and _ only'),
  steps: z.array(SagaStep).min(1),
  compensationRetry: z.strictObject({
    attempts: z.number().int().min(1).default(5).describe('attempts per undo before the saga is parked for an operator'),
    backoff: Backoff.prefault({}),
  }).prefault({}),
});

export const ConfigSchema = z.strictObject({
  dataDir: z.string().default('.tidemark'),
  nats: z.strictObject({
    url: z.string().optional().describe('unset: start an embedded nats-server'),
    user: z.string().optional(),
    password: z.string().optional(),
    token: z.string().optional(),
    creds: z.string().optional(),
    tls: z.strictObject({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional() }).optional(),
    embedded: z.strictObject({ host: z.string().default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(4222) }).prefault({}),
    streams: z.strictObject({
      ingest: StreamLimits.prefault({ maxAge: '7d' }),
      events: StreamLimits.prefault({ maxAge: '30d' }),
      dlq: StreamLimits.prefault({ maxAge: '30d' }),
      alerts: StreamLimits.prefault({ maxAge: '30d' }),
    }).prefault({}),
    ackWait: Duration.default(30_000),
    maxAckPending: z.number().int().positive().default(20_000),
  }).prefault({}),
  clickhouse: z.strictObject({
    url: z.string().optional().describe('unset: embedded chDB under dataDir/clickhouse'),
    user: z.string().optional(),
    password: z.string().optional(),
    database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default('tidemark'),
    serve: z.strictObject({
      host: z.string().default('127.0.0.1').describe('where the embedded engine is served over ClickHouse HTTP'),
      port: z.number().int().min(0).max(65535).default(8123),
      users: z.array(z.strictObject({
        name: z.string().min(1),
        password: z.string().optional(),
        readonly: z.boolean().default(false),
      })).default([]).describe('none: user default with no password, loopback only'),
    }).prefault({}),
  }).prefault({}),
  http: z.strictObject({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8080),
    token: z.string().optional().describe('when set, POST /v1/events needs Authorization: Bearer <token>'),
    maxBodyBytes: z.number().int().positive().default(8 * 1024 * 1024),
  }).prefault({}),
  ingest: z.strictObject({
    maxEventBytes: z.number().int().positive().default(64 * 1024),
    maxFutureSkew: Duration.default(300_000).describe('occurredAt may be at most this far after receivedAt'),
    retention: Duration.default(400 * 86_400_000).describe('occurredAt older than this is rejected'),
    batchSize: z.number().int().positive().default(1_000),
  }).prefault({}),
  processor: z.strictObject({
    batchSize: z.number().int().positive().default(5_000).describe('events per ClickHouse insert at most'),
    refresh: Duration.default(500).describe('how often the realtime view is written'),
    idleTimeout: Duration.default(5_000).describe('after this long without event-time progress, the watermark follows the clock'),
  }).prefault({}),
  reports: z.array(Report).default([]),
  slas: z.array(Sla).default([]),
  sagas: z.strictObject({
    stream: StreamLimits.prefault({ maxAge: '7d', duplicateWindow: '10m' }).describe('SAGAS; the dedup window must cover every step timeout'),
    ackWait: Duration.default(30_000),
    concurrency: z.number().int().positive().default(64).describe('saga inputs handled at once per orchestrator'),
    definitions: z.array(SagaDefinition).default([]),
  }).prefault({}),
});

export type Config = z.infer<typeof ConfigSchema>;
export type ReportConfig = z.infer<typeof Report>;
export type MeasureConfig = z.infer<typeof Measure>;
export type SlaConfig = z.infer<typeof Sla>;
export type StreamLimitsConfig = z.infer<typeof StreamLimits>;
export type SagaDefinitionConfig = z.infer<typeof SagaDefinition>;
export type SagaDefinitionInput = z.input<typeof SagaDefinition>;
export const SagaDefinitionSchema = SagaDefinition;

type Env = Record<string, string | undefined>;

/** The environment names of SPEC §9 and where each lands in the config. */
const ENV_OVERRIDES: ReadonlyArray<[string, string[], 'string' | 'number']> = [
  ['TIDEMARK_DATA_DIR', ['dataDir'], 'string'],
  ['NATS_URL', ['nats', 'url'], 'string'],
  ['NATS_USER', ['nats', 'user'], 'string'],
  ['NATS_PASSWORD', ['nats', 'password'], 'string'],
  ['NATS_TOKEN', ['nats', 'token'], 'string'],
  ['NATS_CREDS', ['nats', 'creds'], 'string'],
  ['CLICKHOUSE_URL', ['clickhouse', 'url'], 'string'],
  ['CLICKHOUSE_USER', ['clickhouse', 'user'], 'string'],
  ['CLICKHOUSE_PASSWORD', ['clickhouse', 'password'], 'string'],
  ['CLICKHOUSE_DATABASE', ['clickhouse', 'database'], 'string'],
  ['TIDEMARK_HTTP_PORT', ['http', 'port'], 'number'],
  ['TIDEMARK_HTTP_HOST', ['http', 'host'], 'string'],
  ['TIDEMARK_HTTP_TOKEN', ['http', 'token'], 'string'],
  ['TIDEMARK_CLICKHOUSE_HTTP_PORT', ['clickhouse', 'serve', 'port'], 'number'],
  ['TIDEMARK_CLICKHOUSE_HTTP_HOST', ['clickhouse', 'serve', 'host'], 'string'],
];

function applyEnv(raw: Record<string, unknown>, env: Env): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const [name, path, kind] of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    let node = out;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      node[key] = typeof next === 'object' && next !== null ? next : {};
      node = node[key] as Record<string, unknown>;
    }
    const parsed = kind === 'number' ? Number(value) : value;
    if (kind === 'number' && !Number.isInteger(parsed)) {
      throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `${name}: "${value}" is not an integer`);
    }
    node[path.at(-1)!] = parsed;
  }
  return out;
}

function describeIssues(error: z.ZodError, origin: string): string {
  const lines = error.issues.map((issue) => {
    const at = issue.path.length ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(top level)';
    if (issue.code === 'unrecognized_keys') return `  ${at === '(top level)' ? '' : `${at}.`}${issue.keys.join(', ')}: unknown key`;
    return `  ${at}: ${issue.message}`;
  });
  return `invalid configuration in ${origin}:\n${lines.join('\n')}`;
}

/** Validates an already-parsed config object (plus environment overrides) against the schema. */
export function parseConfig(raw: unknown, env: Env = {}, origin = 'config'): Config {
  const base = raw === null || raw === undefined ? {} : raw;
  if (typeof base !== 'object' || Array.isArray(base)) {
    throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `invalid configuration in ${origin}: the top level must be a mapping`);
  }
  const result = ConfigSchema.safeParse(applyEnv(base as Record<string, unknown>, env));
  if (!result.success) throw new TidemarkError(ErrorCodes.CONFIG_INVALID, describeIssues(result.error, origin));
  return result.data;
}

/** `--config FILE`, else `TIDEMARK_CONFIG`, else `config/tidemark.yaml` (SPEC §9). */
export function resolveConfigPath(flag: string | undefined, env: Env): string {
  return flag ?? env.TIDEMARK_CONFIG ?? 'config/tidemark.yaml';
}

export function loadConfig(path: string, env: Env = process.env): Config {
  if (!existsSync(path)) throw new TidemarkError(ErrorCodes.CONFIG_NOT_FOUND, `configuration file not found: ${path}`);
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `invalid configuration in ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseConfig(raw, env, path);
}
