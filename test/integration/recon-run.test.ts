import { hostname } from 'node:os';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTidemarkError } from '../../src/core/errors.ts';
import { systemClock } from '../../src/core/time.ts';
import { startNatsGateway, type NatsGateway } from '../../src/ingest/nats-gateway.ts';
import { businessDay } from '../../src/core/business-day.ts';
import { startProcessor, type Processor } from '../../src/processors/processor.ts';
import type { ReconAlert } from '../../src/reconcile/alert.ts';
import { runBatch } from '../../src/reconcile/batch-run.ts';
import { openClaims, type Claims } from '../../src/reconcile/claims.ts';
import { ensureReconStream } from '../../src/reconcile/feeds.ts';
import { acknowledge, listDiscrepancies, listRuns, summarize } from '../../src/reconcile/history.ts';
import { closeTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { startTestStack, type TestStack } from '../harness/stack.ts';
import { json, readAll, unpack, waitFor } from '../harness/streams.ts';

let stack: TestStack;
let { ch, nc, js, jsm, config } = {} as TestStack;
let claims: Claims;
let gateway: NatsGateway;
let processor: Processor;
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
const TZ = 'Asia/Taipei';
const day = businessDay(Date.now() - 86_400_000, TZ);
const ROWS = 20_000;

beforeAll(async () => {
  stack = await startTestStack((database) => testConfig({
    clickhouse: { database },
    reports: [{ name: 'adjustments', types: ['adjustment'], timeZone: TZ, groupBy: ['source'], measures: { amount: { fn: 'sum', field: 'amount' } }, coalesce: '100ms' }],
    reconciliations: [{
      name: 'till',
      a: { table: 'bank' },
      b: { table: 'ledger' },
      key: ['store', 'txn'],
      fields: { amount: { compare: 'absolute', tolerance: '0.01' }, status: { compare: 'exact' } },
      timeZone: TZ,
      heal: { MissingInB: 'publish', Mismatch: 'publish' },
      correction: { sourceField: 'store', type: 'adjustment', fields: ['amount'] },
      alert: { threshold: 5 },
    }],
  }));
  ({ ch, nc, js, jsm, config } = stack);
  await ensureReconStream(jsm, 1);
  claims = await openClaims(js, { clock: systemClock, owner: `test@${hostname()}`, leaseMs: 5_000 });
  gateway = await startNatsGateway({ js, nc, config, logger });
  processor = await startProcessor({ config, js, clickhouse: ch.client, logger, revisorIntervalMs: 50 });

  const command = (query: string, params: Record<string, unknown> = {}) => ch.client.command({ query, query_params: params });
  for (const table of ['bank', 'ledger']) {
    await command(`CREATE TABLE ${ch.db}.${table} (store String, txn UInt32, occurred_at DateTime64(3, 'UTC'), amount Decimal(18, 2), status String) ENGINE = MergeTree ORDER BY occurred_at`);
  }
  const start = Date.parse(`${day}T00:00:00+08:00`);
  await command(`INSERT INTO ${ch.db}.bank SELECT concat('store-', toString(number % 3)), number, fromUnixTimestamp64Milli(toInt64({start:Int64} + number * 4000), 'UTC'), toDecimal64(10 + number % 100, 2), 'paid' FROM numbers({rows:UInt64})`, { start, rows: ROWS });
  await command(`INSERT INTO ${ch.db}.ledger SELECT store, txn, occurred_at, multiIf(txn = 40, amount - 2.5, txn = 41, amount + 0.75, amount), if(txn = 42, 'void', status) FROM ${ch.db}.bank WHERE txn NOT IN (30, 31, 32)`);
  await command(`INSERT INTO ${ch.db}.ledger SELECT 'store-9', 900000 + number, fromUnixTimestamp64Milli({t:Int64}, 'UTC'), 1, 'paid' FROM numbers(2)`, { t: start + 3_600_000 });
  await command(`INSERT INTO ${ch.db}.ledger SELECT * FROM ${ch.db}.ledger WHERE txn = 50`);
});

afterAll(async () => {
  await processor?.stop();
  await gateway?.stop();
  await stack?.dispose();
  await closeTestClickHouse();
});

const recon = () => config.reconciliations[0]!;
const run = () => runBatch({ recon: recon(), clickhouse: ch.client, db: ch.db, js, claims, clock: systemClock, actor: 'test' }, day);
const onSubject = async (stream: string, prefix: string) => (await readAll(js, jsm, stream)).filter((m) => m.subject.startsWith(prefix));

describe('batch runs with history, healing, manual queue and alert', () => {
  it('stores every finding, heals by correction events the reports pick up, queues the rest, alerts once', async () => {
    const first = await run();
    expect(first.discrepancies.map((d) => `${d.type}${d.side ?? ''} ${d.key.join('/')}`).sort()).toEqual([
      'DuplicateB store-2/50', 'Mismatch store-1/40', 'Mismatch store-2/41', 'Mismatch store-0/42',
      'MissingInA store-9/900000', 'MissingInA store-9/900001', 'MissingInB store-0/30', 'MissingInB store-1/31', 'MissingInB store-2/32',
    ].sort());
    expect(first.outcome).toEqual({ stored: 9, fresh: 9, healed: 5, queued: 4 });
    expect(first.alert).toMatchObject({ kind: 'ReconDiscrepancies', reconciliation: 'till', period: day, discrepancies: 9, byType: { MissingInA: 2, MissingInB: 3, Mismatch: 3, Duplicate: 1 } });

    // corrections: B gets A - B per store; the gateway validates them, the processor revises the report
    const events = await waitFor(async () => {
      const corrections = unpack(await onSubject('EVENTS', 'events.store-')).map((e) => e.event);
      return corrections.length === 5 && corrections;
    }, 60_000, 'five validated corrections');
    expect(events.map((e) => `${e.source} ${e.data.amount}`).sort()).toEqual(['store-0 40', 'store-1 2.5', 'store-1 41', 'store-2 -0.75', 'store-2 42']);
    const revisions = await waitFor(async () => {
      const result = await ch.client.query({ query: `SELECT JSONExtractString(group_key, 1) AS store, toString(measures['amount']) AS amount FROM ${ch.db}.report_latest WHERE report = 'adjustments' ORDER BY store`, format: 'JSONEachRow' });
      const rows = await result.json<{ store: string; amount: string }>();
      return rows.length === 3 && rows.map((r) => `${r.store} ${r.amount}`);
    }, 60_000, 'report revisions of the corrections');
    expect(revisions).toEqual(['store-0 40', 'store-1 43.5', 'store-2 41.25']);

    const manual = (await onSubject('RECON', 'recon.manual.till')).map((m) => json<{ type: string; reason: string }>(m));
    expect(manual.map((m) => `${m.type}: ${m.reason}`).sort()).toEqual(['Duplicate: policy manual', 'Mismatch: no correction field differs', 'MissingInA: policy manual', 'MissingInA: policy manual']);
    expect((await onSubject('ALERTS', 'alerts.recon.till')).map((m) => json<ReconAlert>(m).id)).toEqual([`recon-till-${day}`]);
  });

  it('a re-run finds the same ids and neither heals, queues nor alerts again', async () => {
    const second = await run();
    expect(second.discrepancies).toHaveLength(9);
    expect(second.outcome).toEqual({ stored: 9, fresh: 0, healed: 0, queued: 0 });
    expect(second.alert).toBeUndefined();
    expect(await onSubject('INGEST', 'ingest.store-')).toHaveLength(5);
    expect(await onSubject('RECON', 'recon.manual.till')).toHaveLength(4);
    expect(await onSubject('ALERTS', 'alerts.recon.till')).toHaveLength(1);

    const runs = await listRuns(ch.client, ch.db, { name: 'till' });
    expect(runs.map((r) => [r.status, r.period, r.rows_a, r.rows_b, r.missing_in_a, r.missing_in_b, r.mismatches, r.duplicates, r.new_discrepancies, r.healed, r.queued, r.alerted])).toEqual([
      ['succeeded', day, ROWS, ROWS - 3 + 2 + 1, 2, 3, 3, 1, 0, 0, 0, 0],
      ['succeeded', day, ROWS, ROWS - 3 + 2 + 1, 2, 3, 3, 1, 9, 5, 4, 1],
    ]);
  });

  it('acknowledges from the manual queue; a later run never reopens; an unknown id is refused', async () => {
    const open = await listDiscrepancies(ch.client, ch.db, { name: 'till', status: 'open' });
    expect(open).toHaveLength(4);
    const acked = await acknowledge(ch.client, ch.db, open.map((d) => d.id), { actor: 'alice', note: 'checked with the bank', clock: systemClock });
    expect(acked).toHaveLength(4);
    expect(await acknowledge(ch.client, ch.db, [open[0]!.id], { actor: 'alice', note: '', clock: systemClock })).toEqual([]);
    await run();
    expect((await summarize(ch.client, ch.db, { name: 'till', period: day })).map((s) => `${s.type} ${s.status} ${s.count}`)).toEqual([
      'Duplicate acknowledged 1', 'Mismatch acknowledged 1', 'Mismatch healed 2', 'MissingInA acknowledged 2', 'MissingInB healed 3',
    ]);
    const audit = await (await ch.client.query({ query: `SELECT toString(action) AS action, count() AS n FROM ${ch.db}.recon_actions FINAL GROUP BY action ORDER BY action`, format: 'JSONEachRow' })).json<{ action: string; n: string }>();
    expect(audit.map((a) => `${a.action} ${a.n}`)).toEqual(['acknowledged 4', 'alerted 1', 'healed 5', 'queued 4']);
    const err = await acknowledge(ch.client, ch.db, ['Mismatch-nope'], { actor: 'alice', note: '', clock: systemClock }).catch((e: unknown) => e);
    expect(isTidemarkError(err, 'RECON_DISCREPANCY_NOT_FOUND')).toBe(true);
  });

  it('a run row ClickHouse refuses is filed in the DLQ and the run goes on to record its end', async () => {
    await ch.client.command({ query: `ALTER TABLE ${ch.db}.recon_runs ADD CONSTRAINT refuse_running CHECK status != 'running'` });
    try {
      const { runId } = await run();
      const rows = await (await ch.client.query({ query: `SELECT toString(status) AS status FROM ${ch.db}.recon_runs WHERE run_id = {id:String}`, query_params: { id: runId }, format: 'JSONEachRow' })).json<{ status: string }>();
      expect(rows.map((r) => r.status)).toEqual(['succeeded']);
      const filed = (await readAll(js, jsm, 'DLQ')).map((m) => json<{ code: string; subject: string; raw: string }>(m)).filter((r) => r.subject === 'sink.recon_runs');
      expect(filed.map((r) => r.code)).toEqual(['REFUSED_BY_SINK']);
      expect(JSON.parse(Buffer.from(filed[0]!.raw, 'base64').toString())).toMatchObject({ run_id: runId, status: 'running' });
    } finally {
      await ch.client.command({ query: `ALTER TABLE ${ch.db}.recon_runs DROP CONSTRAINT refuse_running` });
    }
  });
});
