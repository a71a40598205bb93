import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { startMonitor } from '../../src/monitor/monitor.ts';
import { useTestClickHouse } from '../harness/clickhouse.ts';
import { useTestNats } from '../harness/nats-client.ts';
import { waitFor } from '../harness/streams.ts';
import { connectTo, logger, sagaConfig, startRole, startServices, trigger } from '../support/saga.ts';
import { useWebhookReceiver } from '../support/webhook-receiver.ts';

/**
 * A kind raised outside the monitor reaches a webhook that selects it: a real saga parks
 * on a real nats-server, the orchestrator publishes SagaParked on ALERTS, and the
 * monitor's webhook delivery (chDB for its tables) POSTs it to the webhook whose `kinds`
 * is [SagaParked], and not to one that selects another kind.
 */

const receiver = useWebhookReceiver();
const ch = useTestClickHouse();
const server = useTestNats();

describe('webhook kinds', () => {
  it('a webhook with kinds [SagaParked] gets a parked saga\'s alert; one with kinds [ReconDiscrepancies] passes it by', async () => {
    const config = sagaConfig({
      clickhouse: { database: ch.db },
      monitor: {
        tick: '100ms',
        webhooks: [
          { name: 'parked', url: `${receiver.base}/parked`, kinds: ['SagaParked'] },
          { name: 'recon', url: `${receiver.base}/recon`, kinds: ['ReconDiscrepancies'] },
        ],
      },
    });
    const conn = await connectTo(server.url, config);
    const monitor = await startMonitor({ config, js: conn.js, clickhouse: ch.client, logger, registry: new Registry() });
    const role = await startRole(conn, config, { registry: new Registry() });
    const services = await startServices(conn.js, conn.jsm);
    try {
      // payment fails, and the compensation of inventory keeps failing: the saga parks
      await trigger(conn.js, 'stuck', { 'do:payment': ['fail'], 'undo:inventory': ['fail', 'fail', 'fail'] });
      const delivered = await waitFor(() => receiver.requests.find((r) => r.path === '/parked'), 30_000, 'the SagaParked alert at its webhook');
      expect(delivered.id).toBe('saga-parked:order.stuck:1');
      expect(JSON.parse(delivered.body)).toMatchObject({ id: 'saga-parked:order.stuck:1', kind: 'SagaParked', saga: 'order', sagaId: 'order.stuck', step: 'inventory', parks: 1 });

      // the other webhook's durable has taken the alert and acked it without a POST
      const stored = await conn.jsm.streams.getMessage('ALERTS', { last_by_subj: 'alerts.saga.order' });
      expect(stored?.json<{ id: string }>().id).toBe('saga-parked:order.stuck:1');
      await waitFor(async () => {
        const info = await conn.jsm.consumers.info('ALERTS', 'webhook-recon');
        return info.ack_floor.stream_seq >= stored!.seq && info.num_pending === 0 && info.num_ack_pending === 0;
      }, 30_000, 'webhook-recon to pass the alert by');
      expect(receiver.requests.filter((r) => r.path === '/recon')).toEqual([]);
      expect(receiver.requests.filter((r) => r.path === '/parked').map((r) => r.id)).toEqual(['saga-parked:order.stuck:1']);
    } finally {
      await services.stop();
      await role.stop();
      await monitor.stop();
      await conn.nc.close();
    }
  });
});
