import { createHash } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ALERT_KINDS } from './alert-kinds.ts';
import { FIELDLESS_FNS, MEASURE_FNS, needsField } from './measures.ts';
import { parseDuration } from './duration.ts';
import { isDecimalText, isExactJsonNumber } from './decimal.ts';
import { normalizeOrigin } from './http-guard.ts';
import { ErrorCodes, TidemarkError } from './errors.ts';
import { readSecretFile, redactUserInfo, redactWebhookUrl, registerSecret } from './secrets.ts';

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

/** JetStream keeps an object on this many servers; R3 survives the loss of one of three. */
const Replicas = z.number().int().min(1).max(5);
const BucketSettings = z.strictObject({ replicas: Replicas.optional().describe('unset: nats.replicas') });

const StreamLimits = z.strictObject({
  maxAge: Duration.describe('how long the stream keeps a message'),
  maxBytes: z.number().int().default(-1).describe('stream size cap in bytes, -1 for none'),
  duplicateWindow: Duration.default(120_000).describe('Nats-Msg-Id dedup window; must cover the longest retry'),
  replicas: Replicas.optional().describe('unset: nats.replicas'),
});

const Measure = z.strictObject({
  fn: z.enum(MEASURE_FNS).describe('a function of the registry in src/core/measures.ts'),
  field: z.string().min(1).optional().describe(`a data field; required for every fn but ${FIELDLESS_FNS.join(', ')}`),
}).refine((m) => !needsField(m.fn) || m.field !== undefined, { message: `field is required unless fn is ${FIELDLESS_FNS.join(' or ')}`, path: ['field'] });

const Window = z.strictObject({
  size: Duration,
  slide: Duration,
}).refine((w) => w.size > 0 && w.slide > 0 && w.size % w.slide === 0, { message: 'size must be a positive multiple of slide' });

const GroupField = z.string().superRefine((field, ctx) => {
  if (!/^(source|type|key|data\..+)$/.test(field)) ctx.addIssue({ code: 'custom', message: `"${field}" is not source, type, key or data.<field>` });
});

const Report = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_]*$/, 'lower-case letters, digits and _ only'),
  types: z.array(z.string().min(1)).min(1),
  timeZone: TimeZone.default('UTC'),
  groupBy: z.array(GroupField).default([]).describe('envelope fields (source, type, key) or data.<field>'),
  measures: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/), Measure),
  close: z.strictObject({ after: Duration.default(3 * 86_400_000) }).prefault({}),
  coalesce: Duration.default(1_000).describe('late events within this interval become one revision'),
  windows: z.array(Window).default([]),
  allowedLateness: Duration.default(0).describe('realtime windows accept events this late before closing'),
});


const Deadline = z.strictObject({
  report: z.string().min(1).describe('a report name from `reports`'),
  status: z.enum(['preliminary', 'final']).default('final').describe('the status every group of the day must have reached'),
  by: Duration.describe('how long after the end of the business day (in the report time zone)'),
});

const Sla = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_-]*$/, 'lower-case letters, digits, _ and - only').optional()
    .describe('stable SLA id used in alert ids; default derived from source and type'),
  source: z.string().default('*').describe('glob over the event source'),
  type: z.string().default('*'),
  maxDelay: Duration.optional().describe('receivedAt - occurredAt above this raises DelayedEvent'),
  expect: z.strictObject({
    every: Duration.refine((ms) => ms > 0, 'must be positive').optional().describe('at least one event in every such interval'),
    dailyBy: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM, 00:00 to 23:59').optional().describe('day D data by D+1 at HH:MM in timeZone'),
    timeZone: TimeZone.default('UTC'),
  }).optional(),
  deadlines: z.array(Deadline).default([]).describe('report R\'s day D must reach a status by a time after the day ends'),
});

const Webhook = z.strictObject({
  url: z.url(),
  name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and - only').optional()
    .describe('names the durable consumer webhook-<name> on ALERTS; default from a hash of the url'),
  secret: z.string().min(1).optional().describe('HMAC-SHA256 key for the X-Tidemark-Signature header'),
  secretEnv: z.string().min(1).optional().describe('name of an environment variable holding the secret'),
  kinds: z.array(z.enum(ALERT_KINDS)).default([]).describe('only these kinds; empty: all'),
  sources: z.array(z.string().min(1)).default([]).describe('only alerts whose source (report for report alerts) matches one of these globs; empty: all'),
  maxAttempts: z.number().int().min(1).max(20).default(3).describe('POSTs in one delivery round before the alert is put back on ALERTS'),
  backoff: Duration.default(500).describe('delay before the next POST of a round, doubled on each further one'),
  timeout: Duration.default(5_000).describe('per request'),
  retryFor: Duration.default(86_400_000).describe('rounds go on this long after the alert was stored on ALERTS; then it is marked undelivered'),
  redeliverAfter: Duration.refine((ms) => ms > 0, 'must be positive').default(10_000).describe('wait after the first failed round, doubled after each further one (±20%)'),
  redeliverMax: Duration.refine((ms) => ms > 0, 'must be positive').default(600_000).describe('longest wait between rounds'),
});

/** The durable consumer on ALERTS that delivers to one webhook: one each, so a dead receiver holds up no other. */
export const webhookDurable = (hook: { name?: string | undefined; url: string }): string =>
  `webhook-${hook.name ?? createHash('sha256').update(hook.url).digest('hex').slice(0, 16)}`;

const Monitor = z.strictObject({
  groupWait: Duration.default(10_000).describe('a DelayedEvent group\'s first alert goes out this long after its first late event was received'),
  groupInterval: Duration.refine((ms) => ms > 0, 'must be positive').default(300_000).describe('while late events go on, an update at most this often'),
  resolveAfter: Duration.default(300_000).describe('a group with no late event for this long resolves'),
  bucket: Duration.optional().describe('no longer used (DelayedEvent alerts are grouped: groupWait, groupInterval); accepted so older configs load'),
  grace: Duration.default(10_000).describe('how far receivedAt may run out of order on EVENTS; a bucket or slot is judged this long after it ends'),
  tick: Duration.refine((ms) => ms > 0, 'must be positive').default(1_000).describe('longest wait between two runs of the clock-driven checks (they also run at the next instant one of them is due)'),
  batchSize: z.number().int().positive().default(5_000),
  stragglers: Duration.optional().describe('no longer used (see resolveAfter); accepted so older configs load'),
  alertMemory: Duration.default(90 * 86_400_000).describe('how long the once-only guard remembers a raised alert'),
  stats: z.strictObject({
    every: Duration.refine((ms) => ms > 0, 'must be positive').default(10_000).describe('slice size of the delay statistics and how often delay_stats is written'),
    windows: z.array(Duration.refine((ms) => ms > 0 && ms <= 86_400_000, 'between 1ms and 1d (delay_slices keeps 2 days)')).min(1).default([300_000, 3_600_000]),
  }).prefault({}),
  webhooks: z.array(Webhook).default([]),
  maxSourcesPerSla: z.number().int().positive().default(10_000).describe('sources a glob SLA keeps state for; events of further sources are stored and reported but not checked against it (tidemark_monitor_sources_cut_total)'),
  sourceIdleExpiry: Duration.default(7 * 86_400_000).describe('a glob SLA forgets a source that sent nothing for this long (at least twice its `every`, 3 days for `dailyBy`, `resolveAfter` plus `groupInterval`), which frees its place under maxSourcesPerSla'),
  maxMetricSources: z.number().int().positive().default(500).describe('sources with their own /metrics delay series per window; the rest are summed under source="_other" (tidemark_delay_sources_cut)'),
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

/** An exact, non-negative decimal written as text ("0.01") or a short JSON number; kept as text so no float touches it. */
const Tolerance = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const text = typeof value === 'number' && isExactJsonNumber(value) ? String(value) : value;
  if (typeof text !== 'string' || !isDecimalText(text) || text.trim().startsWith('-')) {
    ctx.addIssue({ code: 'custom', message: `"${String(value)}" is not a non-negative decimal (write it as text, e.g. "0.01")` });
    return z.NEVER;
  }
  return text.trim();
});

const ReconFieldName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'letters, digits and _ only');

const ReconField = z.discriminatedUnion('compare', [
  z.strictObject({ compare: z.literal('exact') }),
  z.strictObject({ compare: z.literal('absolute'), tolerance: Tolerance.describe('|a - b| <= tolerance') }),
  z.strictObject({ compare: z.literal('percentage'), tolerance: Tolerance.describe('|a - b| <= tolerance% of |a| (A is the reference)') }),
]);

/**
 * One system: a JetStream subject feed (one JSON record per message) or a ClickHouse
 * `table` / `query`. `fields` maps a logical field (key or compared) to a dotted JSON
 * path or a column when the names differ; `time` is the record's business time.
 */
const ReconSide = z.strictObject({
  subject: z.string().min(1).optional(),
  table: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/, 'table or database.table').optional(),
  query: z.string().min(1).optional().describe('a SELECT whose columns carry the logical names'),
  fields: z.record(ReconFieldName, z.string().min(1)).default({}),
  time: z.string().min(1).optional().describe('default occurredAt (subject) or occurred_at (ClickHouse)'),
}).superRefine((side, ctx) => {
  const kinds = [side.subject, side.table, side.query].filter((v) => v !== undefined).length;
  if (kinds !== 1) ctx.addIssue({ code: 'custom', message: 'set exactly one of subject, table, query' });
  if (side.subject === undefined) {
    const column = /^[A-Za-z_][A-Za-z0-9_]*$/;
    for (const [field, name] of Object.entries(side.fields)) {
      if (!column.test(name)) ctx.addIssue({ code: 'custom', path: ['fields', field], message: `"${name}" is not a column name` });
    }
    if (side.time !== undefined && !column.test(side.time)) ctx.addIssue({ code: 'custom', path: ['time'], message: `"${side.time}" is not a column name` });
  }
  if (side.subject?.startsWith('recon.manual.')) ctx.addIssue({ code: 'custom', path: ['subject'], message: 'recon.manual.> is the manual queue' });
});

const HealAction = z.enum(['publish', 'manual']);

const Reconciliation = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_]*$/, 'lower-case letters, digits and _ only'),
  a: ReconSide.describe('system A, the reference'),
  b: ReconSide.describe('system B, compared against A'),
  key: z.array(ReconFieldName).min(1).describe('match key; several fields make a composite key'),
  fields: z.record(ReconFieldName, ReconField).default({}).describe('compared fields and their tolerance'),
  lag: Duration.default(0).describe('either feed may trail the other by this much before a record counts as missing'),
  timeZone: TimeZone.default('UTC').describe('the period is a business day in this zone'),
  heal: z.strictObject({
    MissingInA: HealAction.default('manual'),
    MissingInB: HealAction.default('manual'),
    Mismatch: HealAction.default('manual'),
    Duplicate: z.literal('manual').default('manual'),
  }).prefault({}),
  correction: z.strictObject({
    source: z.string().regex(/^[^.*>\s]+$/, 'one subject token').default('recon'),
    sourceField: ReconFieldName.optional().describe('take the source from this field of the record instead'),
    type: z.string().regex(/^[^.*>\s]+$/, 'one subject token').default('adjustment'),
    fields: z.array(ReconFieldName).min(1).describe('numeric fields whose difference (A - B) the correction carries'),
  }).optional().describe('the event published on ingest.<source>.<type> by the publish policy'),
  alert: z.strictObject({
    threshold: z.number().int().nonnegative().default(0).describe('alert when a period has more open discrepancies than this'),
  }).prefault({}),
  batch: z.strictObject({
    segments: z.number().int().min(1).max(65_536).default(4_096).describe('hash segments of the first checksum pass'),
    fanout: z.number().int().min(2).max(256).default(16).describe('children per differing segment when descending'),
    fetchRows: z.number().int().positive().default(20_000).describe('fetch the rows once the differing segments hold at most this many; above, one more level is cheaper than moving the rows'),
    pageRows: z.number().int().positive().default(50_000).describe('rows per fetched page'),
  }).prefault({}),
  stream: z.strictObject({
    batchSize: z.number().int().positive().default(500),
    stateRetention: Duration.default(7 * 86_400_000).describe('how long match state is kept after its last change'),
    tick: Duration.refine((ms) => ms > 0, 'must be positive').default(250).describe('how often expired records are looked for'),
  }).prefault({}),
}).superRefine((recon, ctx) => {
  const streaming = recon.a.subject !== undefined;
  if (streaming !== (recon.b.subject !== undefined)) {
    ctx.addIssue({ code: 'custom', path: ['b'], message: 'a and b must both be subject feeds (streaming) or both ClickHouse sources (batch)' });
  }
  const known = new Set([...recon.key, ...Object.keys(recon.fields)]);
  for (const field of recon.key) if (field in recon.fields) ctx.addIssue({ code: 'custom', path: ['fields', field], message: 'a key field is not also a compared field' });
  const healing = Object.values(recon.heal).includes('publish');
  if (healing && recon.correction === undefined) ctx.addIssue({ code: 'custom', path: ['correction'], message: 'required when a heal policy is publish' });
  recon.correction?.fields.forEach((field, i) => {
    const spec = recon.fields[field];
    if (spec === undefined || spec.compare === 'exact') ctx.addIssue({ code: 'custom', path: ['correction', 'fields', i], message: `"${field}" must be a compared field with an absolute or percentage tolerance` });
  });
  const sourceField = recon.correction?.sourceField;
  if (sourceField !== undefined && !known.has(sourceField)) ctx.addIssue({ code: 'custom', path: ['correction', 'sourceField'], message: `"${sourceField}" is not a key or compared field` });
  if (recon.stream.stateRetention <= recon.lag) ctx.addIssue({ code: 'custom', path: ['stream', 'stateRetention'], message: 'must be longer than lag' });
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
    replicas: Replicas.default(1).describe('replicas of every stream and KV bucket Tidemark creates, unless overridden per object; 3 in a three-node cluster'),
    buckets: z.strictObject({
      daily: BucketSettings.prefault({}),
      leases: BucketSettings.prefault({}),
      sagas: BucketSettings.prefault({}),
      monitor: BucketSettings.prefault({}),
      alertGuard: BucketSettings.prefault({}),
      reconClaims: BucketSettings.prefault({}),
      realtimeFence: BucketSettings.prefault({}).describe('the committed realtime checkpoint of every processor instance, and which are fenced'),
      reconState: BucketSettings.prefault({}).describe('the match state bucket of every streaming reconciliation'),
    }).prefault({}),
    streams: z.strictObject({
      ingest: StreamLimits.prefault({ maxAge: '7d' }),
      events: StreamLimits.prefault({ maxAge: '30d' }),
      dlq: StreamLimits.prefault({ maxAge: '30d' }),
      alerts: StreamLimits.prefault({ maxAge: '30d' }),
    }).prefault({}),
    ackWait: Duration.default(30_000),
    maxAckPending: z.number().int().positive().default(20_000),
    poisonAfter: z.number().int().min(2).default(20).describe('a message a consumer fails alone this many deliveries, while others pass (or, on a quiet feed, while its sink answers), goes to the DLQ'),
  }).prefault({}),
  clickhouse: z.strictObject({
    url: z.string().optional().describe('unset: embedded chDB under dataDir/clickhouse'),
    user: z.string().optional(),
    password: z.string().optional(),
    database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default('tidemark'),
    cluster: z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]*$/).optional().describe('a self-managed cluster: migrations run ON CLUSTER with Replicated* engines ({shard}/{replica} macros); unset on one server and on ClickHouse Cloud'),
    serve: z.strictObject({
      host: z.string().default('127.0.0.1').describe('where the embedded engine is served over ClickHouse HTTP'),
      port: z.number().int().min(0).max(65535).default(8123),
      users: z.array(z.strictObject({
        name: z.string().min(1),
        password: z.string().optional(),
        passwordEnv: z.string().min(1).optional().describe('name of an environment variable holding the password'),
        passwordFile: z.string().min(1).optional().describe('a file holding the password (a Docker or Kubernetes secret)'),
        readonly: z.boolean().default(false),
      }).refine((u) => [u.password, u.passwordEnv, u.passwordFile].filter((p) => p !== undefined).length <= 1, 'set one of password, passwordEnv, passwordFile'))
        .default([]).describe('none: CLICKHOUSE_USER with CLICKHOUSE_PASSWORD when set, else user default with no password (loopback only)'),
    }).prefault({}),
  }).prefault({}),
  http: z.strictObject({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8080),
    token: z.string().optional().describe('when set, POST /v1/events and the page API (/ui/api/…) need Authorization: Bearer <token>'),
    maxBodyBytes: z.number().int().positive().default(8 * 1024 * 1024),
    maxItems: z.number().int().positive().default(10_000).describe('events one POST /v1/events may carry; more is answered 413 TOO_MANY_ITEMS before any is looked at'),
    packFrom: z.number().int().min(2).default(16).describe('a request with at least this many accepted items of one subject stores them in INGEST as packed messages (NDJSON, one PubAck a pack) instead of one message each'),
  }).prefault({}),
  browser: z.strictObject({
    origins: z.array(z.string().transform((value, ctx) => {
      const origin = normalizeOrigin(value);
      if (origin === undefined || origin !== value.replace(/\/$/, '').toLowerCase()) ctx.addIssue({ code: 'custom', message: `"${value}" is not an origin (scheme://host[:port], e.g. http://localhost:3000)` });
      return origin ?? value;
    })).default([]).describe('web origins allowed to call the HTTP listeners (ClickHouse endpoint, gateway, probes); any other Origin gets 403'),
    hosts: z.array(z.string().min(1)).default([]).describe('Host header names accepted besides loopback ones (a listener bound to loopback refuses any other: DNS rebinding)'),
    cors: z.boolean().default(false).describe('send CORS headers (and answer preflights) for the allowed origins'),
  }).prefault({}),
  ingest: z.strictObject({
    maxEventBytes: z.number().int().positive().default(64 * 1024),
    maxFutureSkew: Duration.default(300_000).describe('occurredAt may be at most this far after receivedAt'),
    retention: Duration.default(400 * 86_400_000).describe('occurredAt older than this is rejected'),
    batchSize: z.number().int().positive().default(2_000).describe('raw messages a gateway validates and forwards at once, at most'),
    recentIds: z.number().int().positive().default(20_000).describe('a gateway drops a copy of an event stored within about this many events, and files a different event under one of their (source, id) identities in the DLQ (DUPLICATE_ID_CONFLICT); a gateway that takes the lease (start, restart, takeover) first reads this many back from the tail of EVENTS, so copies sent again across a change of gateway are dropped too; copies that still get past (much later, or a refill cut short at 5 s) count once in the daily view'),
    linger: Duration.default(50).describe('how long a raw message may wait for its batch to fill: bigger packs on EVENTS, fewer messages to store, deliver and ack'),
    lease: Duration.default(5_000).describe('one gateway at a time reads INGEST; a standby takes over when the active one has not renewed its lease for this long'),
    readAheadBytes: z.number().int().min(65_536).default(64 * 1024 * 1024).describe('bytes of raw INGEST messages the NATS gateway pulls ahead of its batches, at most: HTTP packs run up to 512 KiB each, so a count of messages alone does not bound its memory (raised to one largest message, max_payload, when set lower)'),
    eventsPerMessage: z.number().int().min(1).max(10_000).default(200).describe('the gateway packs up to this many events of one subject that arrive together into one EVENTS message (NDJSON); 1: one event per message'),
  }).prefault({}),
  processor: z.strictObject({
    batchSize: z.number().int().positive().default(20_000).describe('events per ClickHouse insert at most'),
    linger: Duration.default(250).describe('how long an event may wait for its insert to fill up (the realtime view does not wait)'),
    refresh: Duration.default(125).describe('how often the realtime view is written'),
    idleTimeout: Duration.default(5_000).describe('a source silent this long stops holding the realtime watermark back; when all are, it follows the clock'),
    // checkpoints and ack-floor answers come every second and host clocks may differ by one: below 5 s a busy but live processor would be fenced
    liveness: Duration.refine((ms) => ms >= 5_000, 'must be at least 5s').default(30_000).describe('a processor that wrote no realtime checkpoint (or got no consumer-progress answer) for this long is taken for dead: its redeliveries are decided without it and its windows stop being held open'),
    outOfOrderness: Duration.default(15_000).describe('how far a source\'s events may run out of occurredAt order (in EVENTS order) before the realtime view refuses one as late; 15 s covers the most measured (8.2 s, README realtime view); a processor crash needs no margin here (the watermark follows the acked prefix)'),
    recentIds: z.number().int().positive().default(100_000).describe('the realtime view counts a copy of an event (same source and id) once while it is among about this many recent ones'),
    maxSources: z.number().int().positive().default(10_000).describe('sources whose watermark one processor tracks at most; past it the longest silent is dropped'),
    maxRealtimeGroups: z.number().int().positive().default(10_000).describe('groups one report\'s realtime windows hold at once; events of further groups are stored and in the daily view, not in the realtime view (tidemark_realtime_events_cut_total, one CardinalityCapped alert per report and day)'),
  }).prefault({}),
  reports: z.array(Report).default([]),
  slas: z.array(Sla).default([]),
  reconciliations: z.array(Reconciliation).default([]).superRefine((list, ctx) => {
    list.forEach((recon, i) => {
      if (list.findIndex((other) => other.name === recon.name) !== i) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `another reconciliation is named "${recon.name}"` });
    });
  }),
  monitor: Monitor.prefault({}),
  sagas: z.strictObject({
    stream: StreamLimits.prefault({ maxAge: '7d', duplicateWindow: '10m' }).describe('SAGAS; the dedup window must cover every step timeout'),
    ackWait: Duration.default(30_000),
    concurrency: z.number().int().positive().default(64).describe('saga inputs handled at once per orchestrator'),
    maxActive: z.number().int().positive().default(2_000).describe('sagas under way that one orchestrator started before it takes another trigger'),
    definitions: z.array(SagaDefinition).default([]),
  }).prefault({}),
}).superRefine((config, ctx) => {
  const reports = new Set(config.reports.map((r) => r.name));
  const seen = new Set<string>();
  config.slas.forEach((sla, i) => {
    // alert ids and monitor state are keyed by the SLA id, so two SLAs may not share one
    const id = sla.name ?? `${sla.source}|${sla.type}`;
    if (seen.has(id)) ctx.addIssue({ code: 'custom', path: ['slas', i, 'name'], message: `another SLA has the same ${sla.name ? 'name' : 'source and type'}; give each a distinct name` });
    seen.add(id);
    sla.deadlines.forEach((d, j) => {
      if (!reports.has(d.report)) ctx.addIssue({ code: 'custom', path: ['slas', i, 'deadlines', j, 'report'], message: `no report named "${d.report}"` });
    });
  });
  const durables = new Set<string>();
  config.monitor.webhooks.forEach((w, i) => {
    const durable = webhookDurable(w);
    if (durables.has(durable)) ctx.addIssue({ code: 'custom', path: ['monitor', 'webhooks', i, 'name'], message: `another webhook already uses ${durable}: give each one a distinct name` });
    durables.add(durable);
    if (w.secret && w.secretEnv) ctx.addIssue({ code: 'custom', path: ['monitor', 'webhooks', i, 'secretEnv'], message: 'set secret or secretEnv, not both' });
  });
});

export type Config = z.infer<typeof ConfigSchema>;
export type ReportConfig = z.infer<typeof Report>;
export type MeasureConfig = z.infer<typeof Measure>;
export type SlaConfig = z.infer<typeof Sla>;
export type ReconciliationConfig = z.infer<typeof Reconciliation>;
export type ReconSideConfig = z.infer<typeof ReconSide>;
export type ReconFieldConfig = z.infer<typeof ReconField>;
export type DeadlineConfig = z.infer<typeof Deadline>;
export type MonitorConfig = z.infer<typeof Monitor>;
export type WebhookConfig = z.infer<typeof Webhook>;
export { ALERT_KINDS, type AlertKind } from './alert-kinds.ts';
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
  ['TIDEMARK_NATS_PORT', ['nats', 'embedded', 'port'], 'number'],
  ['TIDEMARK_NATS_HOST', ['nats', 'embedded', 'host'], 'string'],
];

/** Secrets that may also come from a file named by `<NAME>_FILE`, so they need not sit in the environment. */
const SECRET_FILES = new Set(['NATS_PASSWORD', 'NATS_TOKEN', 'CLICKHOUSE_PASSWORD', 'TIDEMARK_HTTP_TOKEN']);

function applyEnv(raw: Record<string, unknown>, env: Env): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const [name, path, kind] of ENV_OVERRIDES) {
    const file = SECRET_FILES.has(name) ? env[`${name}_FILE`] : undefined;
    const value = env[name] || (file ? readSecretFile(file, `${name}_FILE`) : undefined);
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

/** Every secret the config holds or points at, so that logs and errors never show it (see core/secrets.ts). */
function registerConfigSecrets(config: Config, env: Env): void {
  for (const value of [config.nats.password, config.nats.token, config.clickhouse.password, config.http.token]) registerSecret(value);
  for (const url of [config.nats.url, config.clickhouse.url]) if (url) registerSecret(redactUserInfo(url) === url ? undefined : url, redactUserInfo(url));
  for (const user of config.clickhouse.serve.users) registerSecret(user.passwordEnv ? env[user.passwordEnv] : user.password);
  for (const hook of config.monitor.webhooks) {
    registerSecret(hook.url, redactWebhookUrl(hook.url));
    registerSecret(hook.secretEnv ? env[hook.secretEnv] : hook.secret);
  }
}

/** Validates an already-parsed config object (plus environment overrides) against the schema. */
export function parseConfig(raw: unknown, env: Env = {}, origin = 'config'): Config {
  const base = raw === null || raw === undefined ? {} : raw;
  if (typeof base !== 'object' || Array.isArray(base)) {
    throw new TidemarkError(ErrorCodes.CONFIG_INVALID, `invalid configuration in ${origin}: the top level must be a mapping`);
  }
  const result = ConfigSchema.safeParse(applyEnv(base as Record<string, unknown>, env));
  if (!result.success) throw new TidemarkError(ErrorCodes.CONFIG_INVALID, describeIssues(result.error, origin));
  registerConfigSecrets(result.data, env);
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
