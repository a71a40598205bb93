import { AckPolicy, jetstream } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { isTidemarkError } from '../../src/core/errors.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { testConfig } from '../harness/config.ts';
import { useConnectedNats } from '../harness/nats-client.ts';
import { waitFor } from '../harness/streams.ts';

const nats = useConnectedNats();

describe('tidemark init topology', () => {
  it('creates every stream and consumer, then changes nothing when run again', async () => {
    const config = testConfig({ nats: { streams: { events: { maxAge: '2d', duplicateWindow: '5m' } } } });
    const first = await ensureTopology(nats.jsm, config);
    expect(first.map((c) => `${c.name}:${c.action}`)).toEqual([
      'INGEST:created', 'EVENTS:created', 'DLQ:created', 'ALERTS:created',
      'tidemark_daily:created', 'tidemark_leases:created', 'tidemark_sagas:created', 'tidemark_monitor:created', 'tidemark_alert_guard:created', 'tidemark_recon_claims:created', 'tidemark_realtime_fence:created',
      'INGEST/gateway:created', 'EVENTS/processor:created', 'EVENTS/monitor:created', 'ALERTS/alert-sink:created',
    ]);
    const events = (await nats.jsm.streams.info('EVENTS')).config;
    expect(events.subjects).toEqual(['events.>']);
    expect(events.max_age).toBe(2 * 86_400 * 1e9);
    expect(events.duplicate_window).toBe(5 * 60 * 1e9);
    const again = await ensureTopology(nats.jsm, config);
    expect(again.every((c) => c.action === 'unchanged')).toBe(true);
  });

  it('holds consumers of EVENTS to about 200,000 unacked events, however the events are packed', async () => {
    const pending = async () => Promise.all([['INGEST', 'gateway'], ['EVENTS', 'processor'], ['EVENTS', 'monitor']].map(async ([s, d]) => (await nats.jsm.consumers.info(s!, d!)).config.max_ack_pending));
    expect(await pending()).toEqual([20_000, 1_000, 1_000]);
    await ensureTopology(nats.jsm, testConfig({ ingest: { eventsPerMessage: 50 }, nats: { streams: { events: { maxAge: '2d', duplicateWindow: '5m' } } } }));
    expect(await pending()).toEqual([20_000, 4_000, 4_000]);
    await ensureTopology(nats.jsm, testConfig({ ingest: { eventsPerMessage: 1 }, nats: { streams: { events: { maxAge: '2d', duplicateWindow: '5m' } } } }));
    expect(await pending()).toEqual([20_000, 20_000, 20_000]);
    await ensureTopology(nats.jsm, testConfig({ nats: { streams: { events: { maxAge: '2d', duplicateWindow: '5m' } } } }));
  });

  it('updates limits that changed in the config', async () => {
    const changes = await ensureTopology(nats.jsm, testConfig({ nats: { ackWait: '7s', streams: { events: { maxAge: '3d', duplicateWindow: '5m' } } } }));
    expect(changes.filter((c) => c.action === 'updated').map((c) => c.name)).toEqual(['EVENTS', 'INGEST/gateway', 'EVENTS/processor', 'EVENTS/monitor', 'ALERTS/alert-sink']);
    expect((await nats.jsm.streams.info('EVENTS')).config.max_age).toBe(3 * 86_400 * 1e9);
    expect((await nats.jsm.consumers.info('INGEST', 'gateway')).config.ack_wait).toBe(7e9);
  });

  it('turns an explicit-ack gateway durable of an earlier version into an AckAll one that goes on from its ack floor', async () => {
    const config = testConfig();
    await ensureTopology(nats.jsm, config);
    await nats.jsm.consumers.delete('INGEST', 'gateway');
    await nats.jsm.consumers.add('INGEST', { durable_name: 'gateway', ack_policy: AckPolicy.Explicit });
    for (let i = 0; i < 10; i++) nats.nc.publish(`ingest.s.t`, `{"i":${i}}`);
    await nats.nc.flush();
    const consumer = await jetstream(nats.nc).consumers.get('INGEST', 'gateway');
    const firstSeq = (await nats.jsm.streams.info('INGEST')).state.first_seq;
    // the old gateway acked four messages and held a fifth when it stopped
    const batch = await consumer.fetch({ max_messages: 5 });
    let n = 0;
    for await (const msg of batch) if (++n <= 4) msg.ack();
    await nats.nc.flush();
    await waitFor(async () => (await nats.jsm.consumers.info('INGEST', 'gateway')).ack_floor.stream_seq === firstSeq + 3, 60_000, 'the acks');

    const changes = await ensureTopology(nats.jsm, config);
    expect(changes.find((c) => c.name === 'INGEST/gateway')?.action).toBe('updated');
    const info = await nats.jsm.consumers.info('INGEST', 'gateway');
    expect(info.config.ack_policy).toBe(AckPolicy.All);
    expect(info.config.opt_start_seq).toBe(firstSeq + 4);
    expect(info.num_pending).toBe(6);
    expect((await ensureTopology(nats.jsm, config)).find((c) => c.name === 'INGEST/gateway')?.action).toBe('unchanged');
  });

  it('refuses a conflicting existing stream with a clear error', async () => {
    await nats.jsm.streams.update('ALERTS', { ...(await nats.jsm.streams.info('ALERTS')).config, subjects: ['alerts.>', 'other.>'] });
    const error = await ensureTopology(nats.jsm, testConfig()).catch((err: unknown) => err);
    expect(isTidemarkError(error, 'STREAM_CONFLICT')).toBe(true);
    expect((error as Error).message).toMatch(/ALERTS.*subjects/);
  });
});
