import fc from 'fast-check';
import { Registry } from 'prom-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/core/time.ts';
import { sagaEffects } from '../../src/saga/effects.ts';
import { sagaMetricsFor } from '../../src/saga/metrics.ts';
import { startOrchestrator, type Orchestrator } from '../../src/saga/orchestrator.ts';
import { createBatchPublisher } from '../../src/nats/batch-publisher.ts';
import { sagaPublish, type SagaPublish } from '../../src/saga/commands.ts';
import type { SagaStore } from '../../src/saga/store.ts';
import { openSagaStore } from '../../src/saga/topology.ts';
import { waitFor } from '../harness/streams.ts';
import { connectTo, logger, orderSaga, sagaConfig, startRole, trigger, useSagaFixture, verifyAgainstOracle, type Script } from '../support/saga.ts';

/**
 * A crash is simulated by closing an instance's connection at a chosen point and never
 * letting it ack or clean up first: whatever it had written or published stays, and
 * whatever it had not acked comes back after ack_wait to a fresh instance. Step
 * timeouts are long, so any difference from the oracle would come from a crash.
 */
const ACK_WAIT = 400;
const config = sagaConfig({ sagas: { ackWait: ACK_WAIT, concurrency: 16 } });
const STEP_TIMEOUT = 10_000;

// the role, started once and stopped, leaves the saga topology and its consumers for the instances below
const saga = useSagaFixture({ config, role: false, serviceLatencyMs: 20, prepare: async (conn) => (await startRole(conn, config, { timeout: STEP_TIMEOUT })).stop() });
let observer: SagaStore;

beforeAll(async () => {
  observer = await openSagaStore(saga.conn.js, createBatchPublisher(saga.conn.nc));
});

/** `time`: after n ms; otherwise at the n-th state write (before or after it lands) or right after the n-th command is stored. */
type CrashPoint = { at: 'time' | 'beforeSave' | 'afterSave' | 'afterPublish'; n: number };

type Instance = { orchestrator: Orchestrator | undefined; crashed: Promise<void>; kill: () => Promise<void> };

async function startInstance(point: CrashPoint | null): Promise<Instance> {
  const own = await connectTo(saga.server.url, config);
  let count = 0;
  let dead = false;
  let markCrashed!: () => void;
  const crashed = new Promise<void>((r) => (markCrashed = r));
  const die = (): never => {
    dead = true;
    void own.nc.close();
    markCrashed();
    throw new Error('crashed');
  };
  const hit = (at: CrashPoint['at']) => point?.at === at && ++count === point.n;
  const publisher = createBatchPublisher(own.nc);
  const inner = await openSagaStore(own.js, publisher);
  const store: SagaStore = {
    ...inner,
    save: async (record, expected) => {
      if (hit('beforeSave')) die();
      const revision = await inner.save(record, expected);
      if (hit('afterSave')) die();
      return revision;
    },
  };
  const stored = sagaPublish(publisher);
  const publish: SagaPublish = async (subject, data, msgId) => {
    const ack = await stored(subject, data, msgId);
    if (subject.startsWith('saga.cmd.') && hit('afterPublish')) die();
    return ack;
  };
  const metrics = sagaMetricsFor(new Registry());
  const effects = sagaEffects({ publish, clock: systemClock, metrics });
  let orchestrator: Orchestrator | undefined;
  try {
    orchestrator = await startOrchestrator({ js: own.js, publish, store, definitions: [orderSaga(STEP_TIMEOUT)], concurrency: 16, holdDeadlinesMs: ACK_WAIT, clock: systemClock, logger, metrics, effects });
  } catch (err) {
    // a crash point can land while the orchestrator is still starting (its first inputs
    // arrive before its last consumer is set up): that is a crash like any other
    if (!dead) throw err;
  }
  return {
    orchestrator,
    crashed,
    kill: async () => {
      if (!dead) await own.nc.close();
      dead = true;
      // only silences the dead instance's timers: its connection is already gone
      await orchestrator?.stop().catch(() => undefined);
    },
  };
}

const doBehaviour = fc.constantFrom<'ok' | 'fail' | 'transient'>('ok', 'ok', 'ok', 'ok', 'ok', 'transient', 'fail');
const undoBehaviour = fc.constantFrom<'ok' | 'fail'>('ok', 'ok', 'ok', 'fail');
const scriptArb: fc.Arbitrary<Script> = fc.record(
  {
    'do:order': fc.array(doBehaviour, { maxLength: 2 }),
    'do:inventory': fc.array(doBehaviour, { maxLength: 2 }),
    'do:payment': fc.array(doBehaviour, { maxLength: 3 }),
    'do:shipping': fc.array(doBehaviour, { maxLength: 2 }),
    'undo:order': fc.array(undoBehaviour, { maxLength: 2 }),
    'undo:inventory': fc.array(undoBehaviour, { maxLength: 2 }),
    'undo:payment': fc.array(undoBehaviour, { maxLength: 2 }),
  },
  { requiredKeys: [] },
);
const crashArb: fc.Arbitrary<CrashPoint> = fc.oneof(
  fc.record({ at: fc.constant('time' as const), n: fc.integer({ min: 10, max: 300 }) }),
  fc.record({ at: fc.constantFrom('beforeSave' as const, 'afterSave' as const, 'afterPublish' as const), n: fc.integer({ min: 1, max: 30 }) }),
);

let run = 0;
const crashesDuringWork = { count: 0 };
const everyRun = new Map<string, Script>();

const verify = (ids: string[], scripts: Script[]) => verifyAgainstOracle(observer, saga.conn, ids, scripts);

describe('orchestrator crashes at random points', () => {
  it('ends every saga exactly as without crashes: each command stored once, no compensation skipped', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(scriptArb, { minLength: 6, maxLength: 10 }), fc.array(crashArb, { minLength: 1, maxLength: 3 }), async (scripts, points) => {
        run++;
        const ids = scripts.map((_, i) => `r${run}-${i}`);
        const publishing = (async () => {
          for (const [i, id] of ids.entries()) {
            await trigger(saga.conn.js, id, scripts[i]!);
            await new Promise((r) => setTimeout(r, 20));
          }
        })();
        for (const point of points) {
          const doomed = await startInstance(point);
          await Promise.race([doomed.crashed, new Promise((r) => setTimeout(r, point.at === 'time' ? point.n : 600))]);
          const active = (await Promise.all(ids.map((id) => observer.load(`order.${id}`)))).some((l) => l && !['completed', 'compensated'].includes(l.record.status));
          if (active) crashesDuringWork.count++;
          await doomed.kill();
        }
        await publishing;
        const survivor = await startInstance(null);
        try {
          await verify(ids, scripts);
        } finally {
          await survivor.kill();
        }
        ids.forEach((id, i) => everyRun.set(id, scripts[i]!));
      }),
      { numRuns: 8, endOnFailure: true },
    );
    // the runs are only worth something if crashes landed while sagas were under way
    expect(crashesDuringWork.count).toBeGreaterThanOrEqual(4);

    // inputs the dead instances held come back to later ones: once all are handled, nothing has moved
    const last = await startInstance(null);
    try {
      await waitFor(async () => {
        const infos = await Promise.all(['saga-triggers', 'saga-inputs'].map((durable) => saga.conn.jsm.consumers.info('SAGAS', durable)));
        return infos.every((info) => info.num_pending === 0 && info.num_ack_pending === 0 && info.num_redelivered === 0);
      }, 60_000, 'every redelivered input to be handled');
      await verify([...everyRun.keys()], [...everyRun.values()]);
    } finally {
      await last.kill();
    }
  }, 60_000);
});
