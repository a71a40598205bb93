/**
 * Shared by the saga tests: an order saga whose services do what each saga's input
 * script says, per step, kind and attempt, and a log of every command they received.
 */
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { ClickHouseClient } from '@clickhouse/client';
import pino from 'pino';
import { expect } from 'vitest';
import { Registry } from 'prom-client';
import type { Config } from '../../src/core/config.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { defineSaga } from '../../src/saga/definition.ts';
import type { Kind, SagaDefinition, SagaEvent } from '../../src/saga/logic/types.ts';
import type { SagaCommand } from '../../src/saga/outbox.ts';
import { reply } from '../../src/saga/outbox.ts';
import { startSagaRole, type SagaRole } from '../../src/saga/role.ts';
import { serveSagaCommands } from '../../src/saga/service.ts';
import type { SagaStore } from '../../src/saga/store.ts';
import { triggerSubject } from '../../src/saga/subjects.ts';
import { testConfig } from '../harness/config.ts';
import { assemble, useFixture } from '../harness/fixture.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { json, readAll, waitFor } from '../harness/streams.ts';

export const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });

export const STEPS = ['order', 'inventory', 'payment', 'shipping'] as const;
export type StepName = (typeof STEPS)[number];

/** Reply types per step: success, failure, and for payment a retryable failure. */
export const TYPES: Record<StepName, { ok: string; fail: string; transient?: string; undone: string; undoFail: string }> = {
  order: { ok: 'OrderCreated', fail: 'OrderRejected', undone: 'OrderCancelled', undoFail: 'CancelFailed' },
  inventory: { ok: 'InventoryReserved', fail: 'OutOfStock', undone: 'InventoryReleased', undoFail: 'ReleaseFailed' },
  payment: { ok: 'PaymentCharged', fail: 'PaymentDeclined', transient: 'PaymentUnavailable', undone: 'PaymentRefunded', undoFail: 'RefundFailed' },
  shipping: { ok: 'Shipped', fail: 'ShippingRejected', undone: 'ShipmentCancelled', undoFail: 'CancelShipmentFailed' },
};

/**
 * What a service does with one attempt: `late` answers success once the saga has timed the
 * attempt out; `slow` answers success after LATE_MS, well inside the step's timeout.
 */
export type Behaviour = 'ok' | 'fail' | 'transient' | 'silent' | 'late' | 'slow';
/** Keys `do:<step>` / `undo:<step>`; the n-th entry is attempt n; missing means ok. */
export type Script = Partial<Record<`${Kind}:${StepName}`, Behaviour[]>>;

export const TIMEOUT_MS = 400;
export const LATE_MS = 700;

export const sagaConfig = (overrides: Record<string, unknown> = {}): Config =>
  testConfig({ sagas: { ackWait: '1s', concurrency: 32 }, ...overrides });

/** The spec as a config file would carry it (the `saga run` test writes it to a config file). */
export const orderSpec = (timeout: number = TIMEOUT_MS) => ({
  name: 'order',
  steps: STEPS.map((name) => ({
    name,
    command: `saga.cmd.${name}.do`,
    payload: { orderId: '$input.orderId', script: '$input.script', previous: name === 'shipping' ? '$steps.payment' : null },
    success: [TYPES[name].ok],
    failure: [TYPES[name].fail, ...(TYPES[name].transient ? [TYPES[name].transient] : [])],
    timeout,
    retry: { attempts: name === 'payment' ? 3 : 2, backoff: { initial: 30, factor: 2, max: 200 }, retryable: TYPES[name].transient ? [TYPES[name].transient] : [] },
    compensation: { command: `saga.cmd.${name}.undo`, payload: { orderId: '$input.orderId', script: '$input.script', reason: '$failure.type' }, success: [TYPES[name].undone], failure: [TYPES[name].undoFail], timeout },
  })),
  compensationRetry: { attempts: 3, backoff: { initial: 30, factor: 2, max: 200 } },
});

export const orderSaga = (timeout?: number): SagaDefinition => defineSaga(orderSpec(timeout));

export type Received = { sagaId: string; step: string; kind: Kind; attempt: number; commandId: string; idempotencyKey: string; payload: unknown };

export type Services = { received: Received[]; stop: () => Promise<void> };

function behaviourOf(command: SagaCommand): Behaviour {
  const script = ((command.payload as { script?: Script } | null)?.script ?? {}) as Script;
  return script[`${command.kind}:${command.step}` as keyof Script]?.[command.attempt - 1] ?? 'ok';
}

/** One durable per service, as real services would have; answers follow the saga's script. */
export async function startServices(js: JetStreamClient, jsm: JetStreamManager, latencyMs = 0): Promise<Services> {
  const received: Received[] = [];
  // answers still to come (clearTimeout and clearInterval clear either kind of timer)
  const late = new Set<NodeJS.Timeout>();
  const running = await Promise.all(
    STEPS.map((step) =>
      serveSagaCommands({
        js,
        jsm,
        name: `svc-${step}`,
        filter: `saga.cmd.${step}.>`,
        logger,
        handle: async (command) => {
          received.push({ sagaId: command.sagaId, step: command.step, kind: command.kind, attempt: command.attempt, commandId: command.commandId, idempotencyKey: command.idempotencyKey, payload: command.payload });
          if (latencyMs) await new Promise((r) => setTimeout(r, Math.random() * latencyMs));
          const types = TYPES[command.step as StepName];
          const undo = command.kind === 'undo';
          switch (behaviourOf(command)) {
            case 'ok':
              return { type: undo ? types.undone : types.ok, data: { by: step, attempt: command.attempt } };
            case 'fail':
              return { type: undo ? types.undoFail : types.fail, data: { why: 'scripted' } };
            case 'transient':
              return { type: types.transient ?? types.fail, data: { why: 'scripted' } };
            case 'silent':
              return null;
            case 'slow': {
              const timer = setTimeout(() => {
                late.delete(timer);
                void reply(js, command, undo ? types.undone : types.ok, { slow: true }).catch(() => undefined);
              }, LATE_MS);
              late.add(timer);
              return null;
            }
            case 'late': {
              // late means after the saga gave the attempt up: the answer goes out once the saga has sent
              // any later command (the retry, or an undo), a signal that holds however slow the machine
              // is; after LATE_MS × 20 it goes out regardless
              const mine = received.length - 1;
              const givenUp = () => received.some((r, i) => i > mine && r.sagaId === command.sagaId);
              const startedAt = Date.now();
              const timer = setInterval(() => {
                if (!givenUp() && Date.now() - startedAt < LATE_MS * 20) return;
                clearInterval(timer);
                late.delete(timer);
                void reply(js, command, undo ? types.undone : types.ok, { late: true }).catch(() => undefined);
              }, 20);
              late.add(timer);
              return null;
            }
          }
        },
      }),
    ),
  );
  return {
    received,
    stop: async () => {
      for (const timer of late) clearTimeout(timer);
      await Promise.all(running.map((s) => s.stop()));
    },
  };
}

export type Conn = { nc: NatsConnection; js: JetStreamClient; jsm: JetStreamManager };

export async function connectTo(url: string, config: Config): Promise<Conn> {
  const nc = await connect({ servers: url, reconnect: false });
  const jsm = await jetstreamManager(nc);
  await ensureTopology(jsm, config);
  return { nc, js: jetstream(nc), jsm };
}

export type RoleOptions = { registry?: Registry; timeout?: number; clickhouse?: ClickHouseClient };

export async function startRole(conn: Conn, config: Config, options: RoleOptions = {}): Promise<SagaRole> {
  return startSagaRole({ config, nc: conn.nc, js: conn.js, jsm: conn.jsm, logger, definitions: [orderSaga(options.timeout)], registry: options.registry ?? new Registry(), clickhouse: options.clickhouse });
}

export type SagaFixture = { server: TestNats; conn: Conn; role: SagaRole; services: Services; dispose: () => Promise<void> };

export type SagaFixtureOptions = {
  config: Config;
  /** the order saga's role, started on the fixture's connection; `false` for a file that runs its own instances */
  role?: RoleOptions | false;
  /** how long each service takes to answer */
  serviceLatencyMs?: number;
  /** runs after the topology is made and before the role and the services start */
  prepare?: (conn: Conn) => Promise<unknown>;
};

/**
 * What the saga tests stand on, for the whole test file (see useFixture): a nats-server, a
 * connection with Tidemark's topology, the order saga's role and the scripted services.
 * `options` may be a function, to build a config around a database opened by an earlier fixture.
 */
export function useSagaFixture(options: SagaFixtureOptions | (() => SagaFixtureOptions)): SagaFixture {
  return useFixture(async () => {
    const { config, role: roleOptions = {}, serviceLatencyMs, prepare } = typeof options === 'function' ? options() : options;
    return assemble(async (defer) => {
      const server = await startTestNats();
      defer(() => server.dispose());
      const conn = await connectTo(server.url, config);
      defer(() => conn.nc.close());
      await prepare?.(conn);
      const role = roleOptions === false ? undefined : await startRole(conn, config, roleOptions);
      if (role) defer(() => role.stop());
      const services = await startServices(conn.js, conn.jsm, serviceLatencyMs);
      defer(() => services.stop());
      return {
        server,
        conn,
        get role() {
          if (!role) throw new Error('this saga fixture runs no role');
          return role;
        },
        services,
      };
    });
  });
}

/**
 * What the services must have been asked, in order, for a script whose services
 * always answer in time: an oracle written without the saga logic.
 */
export function expectedRun(script: Script): { status: 'completed' | 'compensated' | 'parked'; commands: string[] } {
  const commands: string[] = [];
  const done: StepName[] = [];
  for (const step of STEPS) {
    const plan = script[`do:${step}`] ?? [];
    const maxAttempts = step === 'payment' ? 3 : 2;
    let ok = false;
    for (let attempt = 1; ; attempt++) {
      commands.push(`do:${step}#${attempt}`);
      const b = plan[attempt - 1] ?? 'ok';
      if (b === 'ok') ok = true;
      if (b === 'transient' && step === 'payment' && attempt < maxAttempts) continue;
      break;
    }
    if (ok) {
      done.push(step);
      continue;
    }
    for (const undone of done.reverse()) {
      const plan = script[`undo:${undone}`] ?? [];
      for (let attempt = 1; ; attempt++) {
        commands.push(`undo:${undone}#${attempt}`);
        if ((plan[attempt - 1] ?? 'ok') === 'ok') break;
        if (attempt === 3) return { status: 'parked', commands };
      }
    }
    return { status: 'compensated', commands };
  }
  return { status: 'completed', commands };
}

/** Every command in SAGAS, as `kind:step#attempt` per saga in stream order. */
export async function storedCommands(js: JetStreamClient, jsm: JetStreamManager): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const msg of await readAll(js, jsm, 'SAGAS')) {
    if (!msg.subject.startsWith('saga.cmd.')) continue;
    const c = json<SagaCommand>(msg);
    out.set(c.sagaId, [...(out.get(c.sagaId) ?? []), `${c.kind}:${c.step}#${c.attempt}`]);
  }
  return out;
}

export const trigger = (js: JetStreamClient, id: string, script: Script = {}) =>
  js.publish(triggerSubject('order'), JSON.stringify({ id, data: { orderId: id, script } }), { msgID: `trigger:${id}` });

export async function waitForStatus(store: SagaStore, sagaId: string, statuses: string[], timeoutMs = 60_000): Promise<SagaEvent[]> {
  return waitFor(async () => {
    const loaded = await store.load(sagaId);
    return loaded !== null && statuses.includes(loaded.record.status) && loaded.record.events;
  }, timeoutMs, `${sagaId} to be ${statuses.join('|')}`);
}

/** `kind:step#attempt` of every command a service received for one saga, in order. */
export const commandsOf = (services: Services, sagaId: string): string[] =>
  services.received.filter((r) => r.sagaId === sagaId).map((r) => `${r.kind}:${r.step}#${r.attempt}`);

/**
 * Every saga ends as the oracle says, its commands stored in SAGAS exactly as the
 * oracle lists them (so none twice, none skipped, undos in reverse order), and no
 * command id twice in its log.
 */
export async function verifyAgainstOracle(store: SagaStore, conn: Conn, ids: string[], scripts: Script[], timeoutMs = 60_000): Promise<void> {
  const expected = scripts.map(expectedRun);
  let behind: string[] = [];
  const records = await waitFor(async () => {
    const loaded = await Promise.all(ids.map((id) => store.load(`order.${id}`)));
    behind = ids.flatMap((id, i) => {
      const record = loaded[i]?.record;
      if (record?.status === expected[i]!.status) return [];
      return [`${id}: ${record?.status ?? 'missing'} (want ${expected[i]!.status}) after ${record?.events.slice(-3).map((e) => e.type).join(', ') ?? '-'}`];
    });
    return behind.length === 0 && loaded.map((l) => l!.record);
  }, timeoutMs, `${ids.length} sagas to end as the oracle says`).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; ${behind.length} behind, e.g. ${behind.slice(0, 5).join(' | ')}`);
  });
  const stored = await storedCommands(conn.js, conn.jsm);
  for (const [i, id] of ids.entries()) {
    expect({ id, commands: stored.get(`order.${id}`) }).toEqual({ id, commands: expected[i]!.commands });
    const ids = records[i]!.events.flatMap((e) => (e.type === 'CommandDispatched' ? [e.commandId] : []));
    expect(new Set(ids).size).toBe(ids.length);
  }
}

/** A reproducible mix: mostly happy, some failures at any step, some retried payments and failing undos. */
export function mixedScripts(count: number, seed = 7): Script[] {
  let x = seed;
  const next = () => (x = (x * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;
  return Array.from({ length: count }, () => {
    const r = next();
    if (r < 0.6) return {};
    if (r < 0.75) return { [`do:${STEPS[Math.floor(next() * 4)]!}`]: ['fail'] } as Script;
    if (r < 0.9) return { 'do:payment': ['transient', next() < 0.5 ? 'ok' : 'transient', 'transient'] } as Script;
    return { 'do:shipping': ['fail'], 'undo:payment': ['fail'] } as Script;
  });
}
