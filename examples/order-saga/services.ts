import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { relayOutbox, replyMessage, serveSagaCommands, type OutboxMessage, type OutboxStore, type SagaCommand, type ServiceAnswer } from 'tidemark';

/** How the simulated services misbehave; rates are probabilities per attempt. */
export type Behaviour = {
  /** a forward command answers its business failure (OrderRejected, OutOfStock, PaymentDeclined, ShippingRejected) */
  failureRate: number;
  /** payment answers PaymentUnavailable, which the saga retries */
  transientRate: number;
  /** no answer at all: the step times out */
  silentRate: number;
  /** a refund answers RefundFailed (retried; if it keeps failing the saga is parked) */
  undoFailureRate: number;
  /** each answer takes up to this long */
  latencyMs: number;
};

export const defaultBehaviour: Behaviour = { failureRate: 0.05, transientRate: 0.1, silentRate: 0, undoFailureRate: 0, latencyMs: 20 };

type Outcomes = { ok: string; fail: string; undone: string; undoFail?: string; transient?: string };

const SERVICES: Record<string, Outcomes> = {
  order: { ok: 'OrderCreated', fail: 'OrderRejected', undone: 'OrderCancelled' },
  inventory: { ok: 'InventoryReserved', fail: 'OutOfStock', undone: 'InventoryReleased' },
  payment: { ok: 'PaymentCharged', fail: 'PaymentDeclined', transient: 'PaymentUnavailable', undone: 'PaymentRefunded', undoFail: 'RefundFailed' },
  shipping: { ok: 'Shipped', fail: 'ShippingRejected', undone: 'ShipmentCancelled' },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One service's business logic. Work is keyed on the idempotency key, which is the
 * same for every attempt of a step: a retry after a lost reply gets the first
 * result back instead of charging twice.
 */
function businessLogic(service: string, behaviour: Behaviour): (command: SagaCommand) => Promise<ServiceAnswer> {
  const outcomes = SERVICES[service]!;
  const done = new Map<string, ServiceAnswer>();
  return async (command) => {
    if (behaviour.latencyMs) await sleep(Math.random() * behaviour.latencyMs);
    const previous = done.get(command.idempotencyKey);
    if (previous) return previous;
    if (Math.random() < behaviour.silentRate) return null;
    let answer: ServiceAnswer;
    if (command.kind === 'undo') {
      answer = outcomes.undoFail && Math.random() < behaviour.undoFailureRate ? { type: outcomes.undoFail } : { type: outcomes.undone };
    } else if (outcomes.transient && Math.random() < behaviour.transientRate) {
      return { type: outcomes.transient };
    } else if (Math.random() < behaviour.failureRate) {
      answer = { type: outcomes.fail, data: { reason: `simulated ${outcomes.fail}` } };
    } else {
      answer = { type: outcomes.ok, data: { reservation: `res-${command.sagaId}`, chargeId: `ch-${command.sagaId}`, by: service } };
    }
    if (answer.type === outcomes.ok || answer.type === outcomes.undone) done.set(command.idempotencyKey, answer);
    return answer;
  };
}

/**
 * The outbox-table pattern (see README): the order service keeps its orders and its
 * outgoing messages in one store and changes both in one transaction; a relay
 * publishes the outbox. Here the "database" is in memory.
 */
function orderDatabase(): { transaction: (orderId: string, status: string, message: OutboxMessage) => void; outbox: OutboxStore } {
  const orders = new Map<string, string>();
  const outbox = new Map<string, { message: OutboxMessage; sent: boolean }>();
  return {
    transaction: (orderId, status, message) => {
      orders.set(orderId, status);
      if (!outbox.has(message.id)) outbox.set(message.id, { message, sent: false });
    },
    outbox: {
      pending: async (limit) => [...outbox.values()].filter((r) => !r.sent).slice(0, limit).map((r) => r.message),
      markSent: async (ids) => {
        for (const id of ids) outbox.get(id)!.sent = true;
      },
    },
  };
}

export type RunningServices = { stop: () => Promise<void> };

/** The four services of the order saga, each a durable consumer on its `saga.cmd.<service>.>` commands. */
export async function startOrderServices(options: { js: JetStreamClient; jsm: JetStreamManager; logger: Logger; behaviour?: Partial<Behaviour> }): Promise<RunningServices> {
  const { js, jsm, logger } = options;
  const behaviour = { ...defaultBehaviour, ...options.behaviour };
  const db = orderDatabase();
  const running = await Promise.all(
    Object.keys(SERVICES).map((service) => {
      const logic = businessLogic(service, behaviour);
      const handle =
        service === 'order'
          ? async (command: SagaCommand): Promise<ServiceAnswer> => {
              const answer = await logic(command);
              if (answer) db.transaction(String((command.payload as { orderId?: unknown })?.orderId), answer.type, replyMessage(command, answer.type, answer.data));
              return null; // the relay sends the reply from the outbox
            }
          : logic;
      return serveSagaCommands({ js, jsm, name: `example-${service}`, filter: `saga.cmd.${service}.>`, handle, logger });
    }),
  );
  let relaying = true;
  const relay = (async () => {
    while (relaying) {
      const sent = await relayOutbox(js, db.outbox).catch((err: unknown) => {
        logger.warn({ err }, 'outbox relay failed; trying again');
        return 0;
      });
      if (!sent) await sleep(5);
    }
  })();
  return {
    stop: async () => {
      relaying = false;
      await relay;
      await Promise.all(running.map((r) => r.stop()));
    },
  };
}
