import type { JetStreamClient } from '@nats-io/jetstream';
import type { Clock } from '../core/time.ts';
import { publishParkedAlert } from './alerts.ts';
import { publishCommand } from './commands.ts';
import type { SagaState } from './logic/types.ts';
import type { SagaMetrics } from './metrics.ts';
import type { SagaRecord } from './store.ts';

export type EffectStats = { commands: number; alerts: number };

export type Effects = {
  stats: EffectStats;
  /** Sends what a revision owes: its command in flight (until the deadline) and, when parked, the alert. */
  send: (record: SagaRecord, state: SagaState) => Promise<void>;
  /** Marks a revision whose effects this process has sent, so its dispatcher can skip it. */
  sent: (revision: number) => void;
  /** True once for a revision marked sent. */
  takeSent: (revision: number) => boolean;
};

/** The revision that decided to start compensating, and sent the first undo with it. */
function startsCompensation(record: SagaRecord): boolean {
  const [before, last] = record.events.slice(-2);
  return before?.type === 'CompensationStarted' && last?.type === 'CommandDispatched' && last.kind === 'undo';
}

// a revision handed to another instance's dispatcher is never taken here: forget the oldest
const MEMORY = 10_000;

/**
 * The effects of a saga revision, shared by the orchestrator (which sends them as soon
 * as its write lands, sparing a failure the wait in a second queue) and the dispatcher
 * (which sends them from the log, so a crash in between loses nothing). Every message
 * has a deterministic id, so when both send, JetStream keeps one. A command past its
 * deadline is not sent: the timer has given up on it, and a late copy could land
 * outside the dedup window.
 */
export function sagaEffects(options: { js: JetStreamClient; clock: Clock; metrics: SagaMetrics }): Effects {
  const { js, clock, metrics } = options;
  const stats: EffectStats = { commands: 0, alerts: 0 };
  const done = new Set<number>();
  return {
    stats,
    send: async (record, state) => {
      const command = state.inFlight;
      if (command && clock.now() < command.deadline) {
        const ack = await publishCommand(js, state, command);
        stats.commands++;
        // a duplicate means the other sender was first and has measured it
        if (!ack.duplicate && startsCompensation(record) && state.failure) metrics.compensationStart(state.name, (clock.now() - state.failure.failedAt) / 1000);
      }
      if (state.status === 'parked' && state.parked) {
        await publishParkedAlert(js, state);
        stats.alerts++;
      }
    },
    sent: (revision) => {
      done.add(revision);
      if (done.size > MEMORY) done.delete(done.values().next().value!);
    },
    takeSent: (revision) => done.delete(revision),
  };
}
