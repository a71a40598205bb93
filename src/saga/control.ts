import type { JetStreamClient } from '@nats-io/jetstream';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { sleep } from '../core/time.ts';
import type { ControlBody } from './inputs.ts';
import type { SagaRecord, SagaStore } from './store.ts';
import { controlSubject, sagaNameOf } from './subjects.ts';

export type ControlOutcome = { record: SagaRecord; settled: boolean };

/**
 * An operator's decision on a parked saga. It travels as an input on `saga.in.active.<saga>.control`
 * rather than being written here, so it is sequenced with everything else that saga
 * receives and only an orchestrator (which knows the definition) acts on it. The id
 * names the parking it answers, so repeating the command does not act twice.
 */
export async function requestControl(options: { js: JetStreamClient; store: SagaStore; sagaId: string; action: ControlBody['action']; reason?: string; waitMs: number }): Promise<ControlOutcome> {
  const { js, store, sagaId, action } = options;
  const loaded = await store.load(sagaId);
  if (!loaded) throw new TidemarkError(ErrorCodes.SAGA_NOT_FOUND, `no saga ${sagaId}`);
  const before = loaded.record;
  if (before.status !== 'parked') throw new TidemarkError(ErrorCodes.SAGA_NOT_PARKED, `saga ${sagaId} is ${before.status}; only a parked saga can be retried or aborted`);
  const parks = before.events.filter((e) => e.type === 'SagaParked').length;
  const body: ControlBody = { sagaId, action, ...(options.reason ? { reason: options.reason } : {}) };
  await js.publish(controlSubject(sagaNameOf(sagaId)), JSON.stringify(body), { msgID: `control:${sagaId}:${action}:${parks}` });
  const deadline = Date.now() + options.waitMs;
  let record = before;
  while (Date.now() < deadline) {
    record = (await store.load(sagaId))?.record ?? record;
    if (record.events.length > before.events.length) return { record, settled: true };
    await sleep(100);
  }
  return { record, settled: false };
}
