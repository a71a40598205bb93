import type { SagaPublish } from './commands.ts';
import type { SagaState } from './logic/types.ts';
import { alertId, alertMessage } from '../core/alert-kinds.ts';

export type SagaParkedAlert = {
  id: string;
  kind: 'SagaParked';
  saga: string;
  sagaId: string;
  step: string;
  reason: string;
  /** how many times this saga has been parked; each parking is its own alert */
  parks: number;
  at: number;
  resolve: string;
};

/** On ALERTS, with an id derived from the parking, so a redelivered revision alerts once. */
export function publishParkedAlert(publish: SagaPublish, state: SagaState): Promise<{ duplicate: boolean }> {
  const parked = state.parked!;
  const alert: SagaParkedAlert = {
    id: alertId('SagaParked', { sagaId: state.sagaId, parks: state.parks }),
    kind: 'SagaParked',
    saga: state.name,
    sagaId: state.sagaId,
    step: parked.step,
    reason: parked.reason,
    parks: state.parks,
    at: parked.at,
    resolve: `tidemark saga retry ${state.sagaId}  |  tidemark saga abort ${state.sagaId}`,
  };
  const message = alertMessage(alert);
  return publish(message.subject, message.data, message.msgId);
}
