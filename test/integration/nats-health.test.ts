import { JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { ClosedConnectionError, connect, InvalidArgumentError, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, TidemarkError } from '../../src/core/errors.ts';
import { isNatsError, natsAnswers } from '../../src/nats/health.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

const apiError = (status: number, errCode: number, description: string) => new JetStreamApiError({ code: status, err_code: errCode, description });

describe('isNatsError', () => {
  it('takes connection loss, timeouts, no leader and missing topology for NATS errors, through causes', () => {
    expect(isNatsError(new TimeoutError())).toBe(true);
    expect(isNatsError(new ClosedConnectionError())).toBe(true);
    expect(isNatsError(apiError(503, 10023, 'insufficient resources'))).toBe(true);
    expect(isNatsError(apiError(404, 10059, 'stream not found'))).toBe(true);
    expect(isNatsError(new TidemarkError(ErrorCodes.CAS_CONFLICT, 'wrapped', { cause: new TimeoutError() }))).toBe(true);
  });

  it('leaves errors of the message itself to it: bad JSON, too large a payload, a refusal of the request', () => {
    expect(isNatsError(new SyntaxError('Unexpected token n in JSON at position 34'))).toBe(false);
    expect(isNatsError(InvalidArgumentError.format('payload', 'max_payload size exceeded'))).toBe(false);
    expect(isNatsError(apiError(400, 10054, 'message size exceeds maximum allowed'))).toBe(false);
    expect(isNatsError('a string')).toBe(false);
  });
});

let server: TestNats;
let nc: NatsConnection;
beforeAll(async () => {
  server = await startTestNats();
  nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'HEALTH', subjects: ['health.>'] });
}, 30_000);
afterAll(async () => {
  await nc?.close();
  await server?.dispose();
});

describe('natsAnswers (the quiet-feed probe of NATS-only roles)', () => {
  it("says the failure is the message's own only when it is not a NATS error and every stream answers", async () => {
    const jsm = await jetstreamManager(nc, { timeout: 1_000 });
    const own = new SyntaxError('not json');
    expect(await natsAnswers(jsm, ['HEALTH'])(own)).toBe(true);
    // NATS answers now, but the message failed on NATS itself: that says nothing about the message
    expect(await natsAnswers(jsm, ['HEALTH'])(new TimeoutError())).toBe(false);
    // a stream it writes to is gone: an outage of the topology, not poison (the tracker takes a throwing probe for "away")
    await expect(natsAnswers(jsm, ['HEALTH', 'MISSING'])(own)).rejects.toThrow();
    // the server is away: the probe does not answer yes
    await server.stop();
    await expect(natsAnswers(jsm, ['HEALTH'])(own)).rejects.toThrow();
    await server.restart();
    const answered = async (): Promise<boolean> => natsAnswers(jsm, ['HEALTH'])(own).catch(() => false);
    const deadline = Date.now() + 20_000;
    while (!(await answered())) {
      if (Date.now() > deadline) throw new Error('NATS did not answer again after its restart');
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 60_000);
});
