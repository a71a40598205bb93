import { hostname } from 'node:os';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/core/time.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import type { AmendedAlert } from '../../src/processors/daily/amended-alert.ts';
import { businessDay } from '../../src/core/business-day.ts';
import { openRevisionStore } from '../../src/processors/daily/revision-store.ts';
import { reviseDay } from '../../src/processors/daily/revisor.ts';
import { startProcessor } from '../../src/processors/processor.ts';
import type { ReconAlert } from '../../src/reconcile/alert.ts';
import { runBatch } from '../../src/reconcile/batch-run.ts';
import { openClaims } from '../../src/reconcile/claims.ts';
import { ensureReconStream } from '../../src/reconcile/feeds.ts';
import type { SagaParkedAlert } from '../../src/saga/alerts.ts';
import { useTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { startTestIngest } from '../harness/ingest.ts';
import { startTestNats } from '../harness/nats.ts';
import { waitFor } from '../harness/streams.ts';
import { connectTo, sagaConfig, startRole, startServices, trigger, waitForStatus } from '../support/saga.ts';

/**
 * Promptness of the alerts raised by the processor, the saga orchestrator and the
 * reconciler, on `alerts.>` of a real nats-server (and chDB). Each is triggered by
 * work the role does (a revision written, a saga parked, a run's findings), not by a
 * clock, so the delay is wall time: each role stamps the moment (`at`) and the test
 * notes when the alert arrives. The bound is generous (a loaded 2-core machine);
 * what it rules out is an alert that waits for a tick, a batch or a later run.
 */

const WALL_BOUND_MS = 8_000;
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });

type Arrived<A> = { alert: A; at: number };

function watch<A>(nc: NatsConnection, subject: string): { first: (match: (a: A) => boolean, what: string) => Promise<Arrived<A>>; stop: () => void } {
  const seen: Array<Arrived<A>> = [];
  const sub = nc.subscribe(subject, { callback: (_err, msg) => {
    seen.push({ alert: msg.json<A>(), at: Date.now() });
  } });
  return { first: (match, what) => waitFor(() => seen.find((s) => match(s.alert)), 20_000, what), stop: () => sub.unsubscribe() };
}

const ch = useTestClickHouse();

/** NATS with the ingest gateway, a processor of a report whose days close after 3 days (a late event amends), on the file's ClickHouse, and a watch on alerts.>. */
async function startAmending() {
  const report = { name: 'revenue', types: ['sale'], timeZone: 'Asia/Taipei', groupBy: ['source'], measures: { amount: { fn: 'sum', field: 'amount' } }, close: { after: '3d' }, coalesce: '300ms' };
  const config = testConfig({ reports: [report], clickhouse: { database: ch.db } });
  const ingest = await startTestIngest(config);
  const processor = await startProcessor({ config, js: ingest.js, clickhouse: ch.client, logger });
  return { config, ingest, processor, alerts: watch<AmendedAlert>(ingest.nc, 'alerts.>') };
}

describe('ReportAmended', () => {
  it('is on alerts.> as soon as the amended revision is in ClickHouse', async () => {
    const { ingest, processor, alerts } = await startAmending();
    try {
      // a day closed a week ago: a group's first event now is an amendment (revision 1, amended)
      const occurredAt = Date.now() - 10 * 86_400_000;
      const day = businessDay(occurredAt, 'Asia/Taipei');
      const sentAt = Date.now();
      ingest.nc.publish('ingest.amend-1.sale', JSON.stringify({ id: 'amend-1', occurredAt, data: { amount: '2.50' } }));
      const { alert, at } = await alerts.first((a) => a.kind === 'ReportAmended', 'the ReportAmended alert');
      // published after the revision row was inserted: it is there when the alert is
      const rows = await (await ch.client.query({ query: `SELECT revision, status FROM ${ch.db}.report_revisions FINAL WHERE day = {day:Date}`, query_params: { day }, format: 'JSONEachRow' })).json<{ revision: number; status: string }>();
      expect(rows).toEqual([{ revision: 1, status: 'amended' }]);
      // its id names the group by the token of its KV key (base64url of the group key)
      expect(alert).toMatchObject({ id: `amended:revenue:${day}:${Buffer.from('["amend-1"]').toString('base64url')}:1`, revision: 1, previousRevision: 0, previousStatus: null, before: {}, after: { amount: '2.5' } });
      const fromDecision = at - alert.at;
      console.info(`ReportAmended: on alerts.> ${fromDecision} ms after the revision was decided (scan, insert, publish); ${at - sentAt} ms after the late event was published (coalesce 300 ms)`);
      expect(fromDecision).toBeLessThan(WALL_BOUND_MS);
      expect(at - sentAt).toBeLessThan(300 + WALL_BOUND_MS);
    } finally {
      alerts.stop();
      await processor.stop();
      await ingest.dispose();
    }
  });
});

describe('ReportAmended after a crash', () => {
  it('is published by whoever repairs a revision whose writer crashed before its alert', async () => {
    const { config, ingest, processor, alerts } = await startAmending();
    const store = await openRevisionStore(ingest.js);
    let running = true;
    try {
      const occurredAt = Date.now() - 12 * 86_400_000;
      const ref = { report: 'revenue', day: businessDay(occurredAt, 'Asia/Taipei') };
      const groupKey = '["repair-1"]';
      ingest.nc.publish('ingest.repair-1.sale', JSON.stringify({ id: 'repair-1', occurredAt, data: { amount: '2.50' } }));
      await alerts.first((a) => a.groupKey === groupKey && a.revision === 1, 'revision 1\'s alert');
      await processor.stop();
      running = false;
      // what a writer leaves when it dies after claiming revision 2 and before its alert
      const latest = (await store.latest(ref, groupKey))!;
      const crashed = { ...latest.value.record, revision: 2, measures: { amount: '9.99' }, computedAt: Date.now() };
      await store.save(ref, groupKey, { record: crashed, written: false, amends: latest.value.record }, latest.version);
      await reviseDay({ reports: config.reports, store, clickhouse: ch.client, db: ch.db, js: ingest.js, clock: systemClock, logger }, ref);
      const { alert } = await alerts.first((a) => a.groupKey === groupKey && a.revision === 2, 'the repaired revision\'s alert');
      expect(alert).toMatchObject({ previousRevision: 1, before: { amount: '2.5' }, after: { amount: '9.99' } });
      // the figure then goes back to what the events say, as revision 3, alerted too
      await alerts.first((a) => a.groupKey === groupKey && a.revision === 3, 'revision 3\'s alert');
    } finally {
      alerts.stop();
      await store.close();
      if (running) await processor.stop();
      await ingest.dispose();
    }
  });
});

describe('SagaParked', () => {
  it('is on alerts.> as the saga is parked', async () => {
    const server = await startTestNats();
    const config = sagaConfig();
    const conn = await connectTo(server.url, config);
    const role = await startRole(conn, config, { registry: new Registry() });
    const services = await startServices(conn.js, conn.jsm);
    const alerts = watch<SagaParkedAlert>(conn.nc, 'alerts.>');
    try {
      await trigger(conn.js, 'stuck', { 'do:payment': ['fail'], 'undo:inventory': ['fail', 'fail', 'fail'] });
      const { alert, at } = await alerts.first((a) => a.kind === 'SagaParked', 'the SagaParked alert');
      const events = await waitForStatus(role.store, 'order.stuck', ['parked']);
      const parked = events.find((e) => e.type === 'SagaParked');
      expect(parked && parked.at).toBe(alert.at);
      expect(alert).toMatchObject({ id: 'saga-parked:order.stuck:1', sagaId: 'order.stuck', step: 'inventory' });
      console.info(`SagaParked: on alerts.> ${at - alert.at} ms after the orchestrator parked the saga`);
      expect(at - alert.at).toBeLessThan(WALL_BOUND_MS);
    } finally {
      alerts.stop();
      await services.stop();
      await role.stop();
      await conn.nc.close();
      await server.dispose();
    }
  });
});

describe('ReconDiscrepancies', () => {
  it('is on alerts.> as the reconciliation run finds more than the threshold', async () => {
    const server = await startTestNats();
    const config = testConfig({
      clickhouse: { database: ch.db },
      reconciliations: [{ name: 'till', a: { table: 'bank' }, b: { table: 'ledger' }, key: ['txn'], fields: { amount: { compare: 'exact' } }, timeZone: 'UTC', alert: { threshold: 2 } }],
    });
    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await ensureTopology(jsm, config);
    await ensureReconStream(jsm, 1);
    const claims = await openClaims(js, { clock: systemClock, owner: `test@${hostname()}`, leaseMs: 5_000 });
    const alerts = watch<ReconAlert>(nc, 'alerts.>');
    try {
      const day = businessDay(Date.now() - 86_400_000, 'UTC');
      for (const table of ['bank', 'ledger']) {
        await ch.client.command({ query: `CREATE TABLE ${ch.db}.${table} (txn UInt32, occurred_at DateTime64(3, 'UTC'), amount Decimal(18, 2)) ENGINE = MergeTree ORDER BY occurred_at` });
      }
      const noon = Date.parse(`${day}T12:00:00Z`);
      await ch.client.command({ query: `INSERT INTO ${ch.db}.bank SELECT number, fromUnixTimestamp64Milli(toInt64({t:Int64} + number), 'UTC'), toDecimal64(10, 2) FROM numbers(100)`, query_params: { t: noon } });
      // three missing in B: over the threshold of 2
      await ch.client.command({ query: `INSERT INTO ${ch.db}.ledger SELECT * FROM ${ch.db}.bank WHERE txn >= 3` });
      const startedAt = Date.now();
      const run = await runBatch({ recon: config.reconciliations[0]!, clickhouse: ch.client, db: ch.db, js, claims, clock: systemClock, actor: 'test' }, day);
      expect(run.discrepancies).toHaveLength(3);
      const { alert, at } = await alerts.first((a) => a.kind === 'ReconDiscrepancies', 'the ReconDiscrepancies alert');
      expect(alert).toMatchObject({ id: `recon-till-${day}`, discrepancies: 3, threshold: 2 });
      console.info(`ReconDiscrepancies: on alerts.> ${at - alert.at} ms after the run counted its findings; ${at - startedAt} ms after the run started`);
      expect(at - alert.at).toBeLessThan(WALL_BOUND_MS);
    } finally {
      alerts.stop();
      await nc.close();
      await server.dispose();
    }
  });
});
