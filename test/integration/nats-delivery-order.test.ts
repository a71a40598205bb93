import { AckPolicy, jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { useConnectedNats } from '../harness/nats-client.ts';
import { waitFor } from '../harness/streams.ts';

/**
 * What the realtime gate's `since` (src/processors/realtime/fence.ts) rests on, against a
 * real nats-server: a message the server delivered to a connection before it answered a
 * request on that connection reaches the consume() callback before the request resolves,
 * however long the bytes were held on the way, and after the message was delivered again
 * elsewhere. Here a proxy holds everything the server sends the client, as a paused
 * process or a stalled link would.
 */
const nats = useConnectedNats();

/** A TCP proxy to `port` whose server-to-client direction can be held, the bytes kept in order. */
async function holdingProxy(port: number): Promise<{ port: number; hold: () => void; held: () => Buffer; release: () => void; close: () => Promise<void> }> {
  let holding = false;
  let held: Buffer[] = [];
  let client: Socket | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    client = socket;
    const upstream = tcpConnect(port, '127.0.0.1');
    for (const s of [socket, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
    }
    socket.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => (holding ? held.push(chunk) : socket.write(chunk)));
    upstream.on('close', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    hold: () => void (holding = true),
    held: () => Buffer.concat(held),
    release: () => {
      holding = false;
      for (const chunk of held) client!.write(chunk);
      held = [];
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('delivery order on one connection', () => {
  it('a first delivery held on the way past ackWait (and meanwhile delivered again elsewhere) reaches the consume() callback before the answer to a consumer-info request sent after the redelivery', async () => {
    await nats.jsm.streams.add({ name: 'ORDER', subjects: ['order.>'] });
    await nats.jsm.consumers.add('ORDER', { durable_name: 'c', ack_policy: AckPolicy.Explicit, ack_wait: 1_000_000_000 });
    const proxy = await holdingProxy(nats.server.port);
    const slow = await connect({ servers: `127.0.0.1:${proxy.port}` });
    try {
      // looked up before the hold (it asks the server)
      const consumer = await jetstream(slow).consumers.get('ORDER', 'c');
      const seen: string[] = [];
      // one message at a time: while it is held, this connection asks for no more, so the redelivery goes elsewhere
      const messages = await consumer.consume({ max_messages: 1, callback: (msg) => void seen.push(`${msg.subject} delivery ${msg.info.deliveryCount}`) });
      await waitFor(async () => (await nats.jsm.consumers.info('ORDER', 'c')).num_waiting >= 1, 30_000, 'the pull request of the slow connection');

      proxy.hold();
      await nats.js.publish('order.one', 'first');
      await waitFor(() => proxy.held().includes('order.one'), 30_000, 'the message sent to the slow connection');
      // past ackWait the server delivers it again, to another client
      const again = await (await nats.js.consumers.get('ORDER', 'c')).next({ expires: 30_000 });
      expect(again?.info.deliveryCount).toBe(2);

      // the slow connection asks for the consumer's progress, as a processor's realtime view does before a checkpoint
      const answered = consumer.info().then(() => seen.push('answer'));
      await waitFor(() => proxy.held().includes('num_ack_pending'), 30_000, 'the answer, held behind the message');
      proxy.release();
      await answered;
      // (once read, the connection asks for one more message: the next delivery may follow the answer)
      expect(seen.slice(0, seen.indexOf('answer') + 1)).toEqual(['order.one delivery 1', 'answer']);
      messages.stop();
    } finally {
      await slow.close();
      await proxy.close();
    }
  }, 120_000);
});
