import { describe, expect, it } from 'vitest';
import { ALERT_KIND_INFO, ALERT_KINDS, alertId, alertKindSubject, alertMessage, type AlertKind, type AnyAlert } from '../../src/core/alert-kinds.ts';
import { realtimeCappedAlert } from '../../src/processors/realtime/capped-alert.ts';
import { testConfig } from '../harness/config.ts';

/**
 * Alert ids are stored (the alert guard, Nats-Msg-Id dedup, recon claims): a changed id
 * raises an alert again after an upgrade. These literals are written by hand from the
 * README's id table and SPEC §9's `alerts.<kind>.<source>`, not computed by the code.
 */
const T = Date.parse('2030-05-01T00:00:00Z');

describe('alert ids', () => {
  it('keep the documented schemes', () => {
    expect(alertId('DelayedEvent', { sla: 'late', source: 'store-17', startedAt: T })).toBe('delayed:late:store-17:2030-05-01T00:00:00.000Z');
    expect(alertId('DelayedEvent', { sla: 'late', source: 'store-17', startedAt: T, sequence: 1 })).toBe('delayed:late:store-17:2030-05-01T00:00:00.000Z');
    expect(alertId('DelayedEvent', { sla: 'late', source: 'store-17', startedAt: T, sequence: 3 })).toBe('delayed:late:store-17:2030-05-01T00:00:00.000Z#3');
    expect(alertId('MissingData', { sla: 'feed', source: 'feed-1', windowStart: T + 5 * 60_000 })).toBe('missing:feed:feed-1:every:2030-05-01T00:05:00.000Z');
    expect(alertId('MissingData', { sla: 'feed', source: 'feed-1', day: '2030-05-01' })).toBe('missing:feed:feed-1:daily:2030-05-01');
    expect(alertId('Resolved', { resolves: 'missing:feed:feed-1:daily:2030-05-01' })).toBe('resolved:missing:feed:feed-1:daily:2030-05-01');
    expect(alertId('DeadlineMissed', { report: 'revenue', status: 'final', day: '2030-05-01' })).toBe('deadline:revenue:final:2030-05-01');
    expect(alertId('CardinalityCapped', { sla: 'late', day: '2030-05-01' })).toBe('capped:late:2030-05-01');
    expect(alertId('CardinalityCapped', { report: 'revenue', day: '2030-05-01' })).toBe('capped-realtime:revenue:2030-05-01');
    expect(alertId('SagaParked', { sagaId: 'order.stuck', parks: 2 })).toBe('saga-parked:order.stuck:2');
    expect(alertId('ReconDiscrepancies', { reconciliation: 'till', period: '2030-05-01' })).toBe('recon-till-2030-05-01');
  });

  it('name a ReportAmended group by its base64url, or by #<sha256> when that is long', () => {
    // printf '%s' '["store-9"]' | base64 (url alphabet, unpadded)
    expect(alertId('ReportAmended', { report: 'revenue', day: '2030-05-01', groupKey: '["store-9"]', revision: 4 })).toBe('amended:revenue:2030-05-01:WyJzdG9yZS05Il0:4');
    // 272 base64url characters, past 172: sha256 of the key, base64url (computed with Python's hashlib)
    const long = `["${'x'.repeat(200)}"]`;
    expect(alertId('ReportAmended', { report: 'revenue', day: '2030-05-01', groupKey: long, revision: 2 })).toBe('amended:revenue:2030-05-01:#Tn1fs6iu-oaEcavWqgEl1VGT4dmHuIOZnlPGMcA1OTc:2');
  });

  it('are what the roles put on their alerts', () => {
    const capped = realtimeCappedAlert('revenue', 2, { receivedAt: T + 10 * 3_600_000 }, '["store-9"]');
    expect(capped.id).toBe('capped-realtime:revenue:2030-05-01');
    expect(alertMessage(capped).subject).toBe('alerts.capped.revenue');
  });
});

describe('alert subjects and messages', () => {
  it('publish each kind under alerts.<token>.<what it is about>', () => {
    const cases: Array<[AnyAlert, string]> = [
      [{ id: 'a', kind: 'DelayedEvent', source: 'store-17' }, 'alerts.delayed.store-17'],
      [{ id: 'b', kind: 'MissingData', source: 'feed-1' }, 'alerts.missing.feed-1'],
      [{ id: 'c', kind: 'Resolved', source: 'feed-1' }, 'alerts.resolved.feed-1'],
      [{ id: 'd', kind: 'DeadlineMissed', source: 'revenue' }, 'alerts.deadline.revenue'],
      [{ id: 'e', kind: 'CardinalityCapped', source: 'late' }, 'alerts.capped.late'],
      [{ id: 'f', kind: 'ReportAmended', report: 'revenue' }, 'alerts.amended.revenue'],
      [{ id: 'g', kind: 'SagaParked', saga: 'order' }, 'alerts.saga.order'],
      [{ id: 'h', kind: 'ReconDiscrepancies', reconciliation: 'till' }, 'alerts.recon.till'],
    ];
    expect(new Set(cases.map(([a]) => a.kind))).toEqual(new Set(ALERT_KINDS));
    for (const [alert, subject] of cases) expect(alertMessage(alert)).toEqual({ subject, data: JSON.stringify(alert), msgId: alert.id });
  });

  it('make a name safe as one subject token', () => {
    expect(alertKindSubject('MissingData', 'feed one.x')).toBe('alerts.missing.feed_one_x');
    expect(alertKindSubject('DelayedEvent', 'a*b>c\td')).toBe('alerts.delayed.a_b_c_d');
    expect(alertKindSubject('SagaParked', '')).toBe('alerts.saga._');
    const parked = { id: 'x', kind: 'SagaParked' as const, saga: 'order.v2', sagaId: 's-1' };
    expect(alertMessage(parked).subject).toBe('alerts.saga.order_v2');
  });

  it('has one token per kind, and every kind can be chosen in a webhook', () => {
    const tokens = ALERT_KINDS.map((kind: AlertKind) => ALERT_KIND_INFO[kind].token);
    expect(new Set(tokens).size).toBe(ALERT_KINDS.length);
    expect(ALERT_KINDS).toEqual(expect.arrayContaining(['DelayedEvent', 'MissingData', 'Resolved', 'DeadlineMissed', 'ReportAmended', 'SagaParked', 'ReconDiscrepancies', 'CardinalityCapped']));
    for (const kind of ALERT_KINDS) {
      const config = testConfig({ monitor: { webhooks: [{ url: 'http://127.0.0.1:1/x', kinds: [kind] }] } });
      expect(config.monitor.webhooks[0]!.kinds).toEqual([kind]);
    }
    expect(() => testConfig({ monitor: { webhooks: [{ url: 'http://127.0.0.1:1/x', kinds: ['Parked'] }] } })).toThrow();
  });
});
