import type { Clock } from '../core/time.ts';
import { publishParkedAlert } from './alerts.ts';
import { publishCommand, type SagaPublish } from './commands.ts';
import type { SagaState } from './logic/types.ts';
import type { SagaMetrics } from './metrics.ts';
import type { SagaRecord } from './store.ts';

export type EffectStats = { commands: number; alerts: number };

export type Effects = {
  stats: EffectStats;
  /** Sends what a revision owes: its command in flight (until the deadline) and, when parked, the alert. */
  send: (record: SagaRecord, state: SagaState) => Promise<void>;
};

/** The revision that decided to start compensating, and sent the first undo with it. */
function startsCompensation(record: SagaRecord): boolean {
  const [before, last] = record.events.slice(-2);
  return before?.type === 'CompensationStarted' && last?.type === 'CommandDispatched' && last.kind === 'undo';
}

/**
 * The effects of a saga revision. The orchestrator sends them once the revision is
 * stored and before it acks the input that caused it; when a crash comes in between,
 * the input comes back, changes nothing, and the effects of the saga's latest
 * revision are sent again.
 * Every message has a deterministic id, so JetStream keeps one copy. A command past
 * its deadline is not sent: the timer has given up on it, and a late copy could land
 * outside the dedup window.
 */
export function sagaEffects(options: { publish: SagaPublish; clock: Clock; metrics: SagaMetrics }): Effects {
  const { publish, clock, metrics } = options;
  const stats: EffectStats = { commands: 0, alerts: 0 };
  return {
    stats,
    send: async (record, state) => {
      const command = state.inFlight;
      if (command && clock.now() < command.deadline) {
        const ack = await publishCommand(publish, state, command);
        stats.commands++;
        // a duplicate is a re-send: the first one was measured
        if (!ack.duplicate && startsCompensation(record) && state.failure) metrics.compensationStart(state.name, (clock.now() - state.failure.failedAt) / 1000);
      }
      if (state.status === 'parked' && state.parked) {
        await publishParkedAlert(publish, state);
        stats.alerts++;
      }
    },
  };
}
