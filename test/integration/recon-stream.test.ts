import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shiftedClock } from '../support/clock.ts';
import { startNatsGateway, type NatsGateway } from '../../src/ingest/nats-gateway.ts';
import type { ReconAlert } from '../../src/reconcile/alert.ts';
import { durableName } from '../../src/reconcile/feeds.ts';
import { startReconcileStreaming, type ReconcileStreaming } from '../../src/reconcile/streaming.ts';
import { closeTestClickHouse } from '../harness/clickhouse.ts';
import { testConfig } from '../harness/config.ts';
import { startTestStack, type TestStack } from '../harness/stack.ts';
import { json, readAll, unpack, waitFor } from '../harness/streams.ts';

let stack: TestStack;
let { ch, nc, js, jsm, config } = {} as TestStack;
let role: ReconcileStreaming | undefined;
let gateway: NatsGateway;
const clock = shiftedClock();
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
const HOUR = 3_600_000;

beforeAll(async () => {
  stack = await startTestStack((database) => testConfig({
    clickhouse: { database },
    nats: { ackWait: '2s' },
    reconciliations: [{
      name: 'settle',
      a: { subject: 'recon.settle.bank', fields: { amount: 'data.amount' }, time: 'at' },
      b: { subject: 'recon.settle.ledger' },
      key: ['merchant', 'txn'],
      fields: { amount: { compare: 'absolute', tolerance: '0.01' }, status: { compare: 'exact' } },
      lag: '1h',
      heal: { MissingInB: 'publish', Mismatch: 'publish' },
      correction: { source: 'recon', type: 'adjustment', fields: ['amount'] },
      alert: { threshold: 3 },
      stream: { batchSize: 50, tick: '50ms' },
    }, {
      // B is the pipeline itself: validated sale events on EVENTS, a stream reconciliation does not own
      name: 'pos',
      a: { subject: 'recon.pos.bank' },
      b: { subject: 'events.pos.sale', fields: { txn: 'id', amount: 'data.amount' } },
      key: ['txn'],
      fields: { amount: { compare: 'absolute', tolerance: '0' } },
      lag: '1h',
      stream: { tick: '50ms' },
    }],
  }));
  ({ ch, nc, js, jsm, config } = stack);
  gateway = await startNatsGateway({ js, nc, config, logger });
});

afterAll(async () => {
  await role?.stop();
  await gateway?.stop();
  await stack?.dispose();
  await closeTestClickHouse();
});

const start = async () => (role = await startReconcileStreaming({ config, js, jsm, clickhouse: ch.client, logger, clock, names: ['settle'] }));
const at = Date.parse('2026-03-01T10:00:00Z');
const bank = (txn: number, amount: string, status = 'paid') => nc.publish('recon.settle.bank', JSON.stringify({ merchant: 'm1', txn, at, status, data: { amount } }));
const ledger = (txn: number, amount: string, status = 'paid') => nc.publish('recon.settle.ledger', JSON.stringify({ merchant: 'm1', txn: String(txn), occurredAt: at + 500, amount, status }));

async function caughtUp(): Promise<boolean> {
  for (const side of ['A', 'B'] as const) {
    for (const role of ['match', 'expiry'] as const) {
      const info = await jsm.consumers.info('RECON', durableName('settle', side, role));
      if (info.num_pending > 0 || (role === 'match' && info.num_ack_pending > 0)) return false;
    }
  }
  return true;
}

type Row = { id: string; type: string; side: string; key: string; status: string; action: string; count: number };
async function findings(name = 'settle'): Promise<string[]> {
  const result = await ch.client.query({ query: `SELECT id, type, side, key, status, action, count FROM ${ch.db}.recon_discrepancies FINAL WHERE name = {name:String} ORDER BY key, type`, query_params: { name }, format: 'JSONEachRow' });
  return (await result.json<Row>()).map((r) => `${r.type}${r.side} ${(JSON.parse(r.key) as string[]).at(-1)}${Number(r.count) > 1 ? ` x${r.count}` : ''} ${r.status}`).sort();
}
const subjects = async (stream: string, subject: string) => (await readAll(js, jsm, stream)).filter((m) => m.subject === subject);
/** Events on one EVENTS subject (messages there may be packs of several). */
const eventsOn = async (subject: string) => unpack(await subjects('EVENTS', subject)).map((e) => e.event);

describe('streaming reconciliation', () => {
  it('matches as records arrive, holds one-sided keys as expected, then finds every kind once the window passes', async () => {
    await start();
    for (let txn = 1; txn <= 20; txn++) bank(txn, `${txn}.00`);
    bank(6, '6.00'); // a second message for one key: a duplicate
    nc.publish('recon.settle.bank', '{"merchant": "m1"'); // not JSON: to the DLQ
    await nc.flush();
    // the ledger trails the bank: every bank message stored and consumed before the first ledger one
    await waitFor(async () => (await subjects('RECON', 'recon.settle.bank')).length === 22 && caughtUp(), 60_000, 'the bank feed consumed');
    for (let txn = 1; txn <= 16; txn++) {
      if (txn === 3) ledger(txn, '3.005'); // within tolerance
      else if (txn === 4) ledger(txn, '4.02'); // beyond it
      else if (txn === 5) ledger(txn, '5.00', 'void');
      else ledger(txn, `${txn}.00`);
    }
    ledger(50, '1.00');
    // a finding is stored open, then healed once its correction is published: wait for the end state
    const matched = ['DuplicateA 6 x2 open', 'Mismatch 4 healed', 'Mismatch 5 open'];
    await waitFor(async () => (await findings()).join() === matched.join() && (await subjects('RECON', 'recon.settle.ledger')).length === 17 && caughtUp(), 60_000, 'feeds consumed');

    expect(await findings()).toEqual(matched);
    const states = new Map((await role!.running[0]!.store.entries()).map((e) => [e.key[1], e.state]));
    expect([17, 18, 19, 20, 50].map((t) => states.get(String(t)))).toEqual(['expected', 'expected', 'expected', 'expected', 'expected']);
    expect(states.get('3')).toBe('matched');

    clock.shift(2 * HOUR);
    // a finding is stored open, then healed once its correction is published: wait for the end state
    const settled = [
      'DuplicateA 6 x2 open', 'Mismatch 4 healed', 'Mismatch 5 open',
      'MissingInA 50 open',
      'MissingInB 17 healed', 'MissingInB 18 healed', 'MissingInB 19 healed', 'MissingInB 20 healed',
    ];
    await waitFor(async () => (await findings()).join() === settled.join() && caughtUp(), 60_000, 'missing records after the window, healed where they can be');
    expect(await findings()).toEqual(settled);

    const corrections = await waitFor(async () => {
      const events = await eventsOn('events.recon.adjustment');
      return events.length === 5 && events;
    }, 60_000, 'corrections validated by the gateway');
    expect(corrections.map((e) => `${JSON.parse(e.key!)[1]} ${e.data.amount} ${e.data.kind}`).sort()).toEqual(['17 17 MissingInB', '18 18 MissingInB', '19 19 MissingInB', '20 20 MissingInB', '4 -0.02 Mismatch']);
    // findings are stored before they are acted on: wait for the actions themselves
    const manual = await waitFor(async () => {
      const msgs = await subjects('RECON', 'recon.manual.settle');
      return msgs.length === 3 && msgs.map((m) => json<{ type: string; key: string[] }>(m));
    }, 60_000, 'the manual queue');
    expect(manual.map((d) => `${d.type} ${d.key[1]}`).sort()).toEqual(['Duplicate 6', 'Mismatch 5', 'MissingInA 50']);
    const alerts = await waitFor(async () => {
      const msgs = await subjects('ALERTS', 'alerts.recon.settle');
      return msgs.length > 0 && msgs.map((m) => json<ReconAlert>(m));
    }, 60_000, 'the alert');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ kind: 'ReconDiscrepancies', reconciliation: 'settle', period: '2026-03-01', threshold: 3 });
    expect((await subjects('DLQ', 'dlq.recon.settle.bank')).length).toBe(1);
  }, 180_000);

  it('survives a restart: records arriving while it is down are matched, nothing is raised or healed twice', async () => {
    await role!.stop();
    const stored = async () => (await subjects('RECON', 'recon.settle.bank')).length + (await subjects('RECON', 'recon.settle.ledger')).length;
    const before = await stored();
    for (let txn = 21; txn <= 30; txn++) bank(txn, `${txn}.00`);
    for (let txn = 21; txn <= 28; txn++) ledger(txn, txn === 22 ? '22.50' : `${txn}.00`);
    ledger(4, '4.00'); // a second B copy of an already mismatched key: a duplicate
    await nc.flush();
    await waitFor(async () => (await stored()) === before + 19, 60_000, 'the records stored while the reconciler is down');
    clock.shift(2 * HOUR); // the window of the new records passes while nobody is reading
    await start();
    const newFindings = async () => (await findings()).filter((f) => !/^(DuplicateA 6|Mismatch [45] |MissingIn[AB] (50|1[7-9]|20) )/.test(f));
    const settled = ['DuplicateB 4 x2 open', 'Mismatch 22 healed', 'MissingInB 29 healed', 'MissingInB 30 healed'];
    // stored open first, healed once the correction is out: wait for the end state
    await waitFor(async () => (await findings()).length === 12 && (await newFindings()).join() === settled.join() && caughtUp(), 60_000, 'findings after the restart');
    expect(await newFindings()).toEqual(settled);
    await waitFor(async () => (await eventsOn('events.recon.adjustment')).length === 8, 60_000, 'the new corrections');
    await waitFor(async () => (await subjects('RECON', 'recon.manual.settle')).length === 4, 60_000, 'the new manual entry');
    const ids = (await subjects('INGEST', 'ingest.recon.adjustment')).map((m) => json<{ id: string }>(m).id);
    expect(new Set(ids).size).toBe(ids.length);
    const manual = (await subjects('RECON', 'recon.manual.settle')).map((m) => json<{ type: string; key: string[] }>(m));
    expect(manual.map((d) => `${d.type} ${d.key[1]}`).sort()).toEqual(['Duplicate 4', 'Duplicate 6', 'Mismatch 5', 'MissingInA 50']);
    expect((await subjects('ALERTS', 'alerts.recon.settle')).length).toBe(1);
    const audit = async () => (await (await ch.client.query({ query: `SELECT action, count() AS n FROM ${ch.db}.recon_actions FINAL GROUP BY action ORDER BY action`, format: 'JSONEachRow' })).json<{ action: string; n: string }>()).map((r) => `${r.action} ${r.n}`);
    // audit rows follow the actions they record
    await waitFor(async () => (await audit()).join() === 'healed 8,queued 4,alerted 1', 60_000, 'the audit trail');
    expect(await audit()).toEqual(['healed 8', 'queued 4', 'alerted 1']);
  }, 180_000);

  it('reads a feed from a subject another stream captures (EVENTS), through its own durable consumers', async () => {
    const pos = await startReconcileStreaming({ config, js, jsm, clickhouse: ch.client, logger, clock, names: ['pos'] });
    try {
      const occurredAt = Date.now() - 60_000;
      for (const [id, amount] of [['s-1', '10'], ['s-2', '20'], ['s-3', '30'], ['s-4', '41']]) nc.publish('ingest.pos.sale', JSON.stringify({ id, occurredAt, data: { amount } }));
      // the clock runs hours ahead here, so B must be on EVENTS before A arrives, or A's window would already be over
      await waitFor(async () => (await eventsOn('events.pos.sale')).length === 4, 60_000, 'sales on EVENTS');
      for (const [txn, amount] of [['s-1', '10.00'], ['s-2', '20'], ['s-3', '30'], ['s-4', '40'], ['s-5', '50']]) nc.publish('recon.pos.bank', JSON.stringify({ txn, amount, occurredAt }));
      await waitFor(async () => (await findings('pos')).length === 2, 60_000, 'pos findings');
      expect(await findings('pos')).toEqual(['Mismatch s-4 open', 'MissingInB s-5 open']);
      const info = await jsm.consumers.info('EVENTS', durableName('pos', 'B', 'match'));
      expect(info.config.filter_subject).toBe('events.pos.sale');
    } finally {
      await pos.stop();
    }
  });
});
