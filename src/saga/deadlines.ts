import type { Logger } from 'pino';
import type { Clock } from '../core/time.ts';
import type { SagaPublish } from './commands.ts';
import type { TickBody } from './inputs.ts';
import { TERMINAL } from './logic/types.ts';
import type { RecordSummary } from './store.ts';
import { sagaNameOf, tickSubject } from './subjects.ts';
import { timerWheel } from './timers.ts';

export type SagaDeadlines = {
  /** the due time of a saga from its latest revision (none once it ended or has no deadline) */
  schedule: (sagaId: string, summary: RecordSummary | null) => void;
  stop: () => void;
};

/**
 * Deadlines of the sagas known here behind one timer wheel. A deadline goes through the
 * stream as an input rather than straight to the decide loop: replies stored before it
 * are then handled before it, and every instance noticing the same deadline publishes
 * the same id, so it is handled once.
 */
export function sagaDeadlines(options: {
  clock: Clock;
  publish: SagaPublish;
  logger: Logger;
  /** deadlines of sagas written before the start wait this long (the inputs consumer's ack_wait) */
  holdDeadlinesMs: number;
  stopping: () => boolean;
  /** keeps a publish under way until stop */
  inBackground: (work: Promise<unknown>) => void;
  /** counts a deadline fired */
  fired: () => void;
}): SagaDeadlines {
  const { clock, publish, logger } = options;
  const dues = new Map<string, number>();
  const wheel = timerWheel(clock, (sagaId) => {
    const due = dues.get(sagaId);
    if (due === undefined) return;
    options.fired();
    const body: TickBody = { sagaId, due };
    options.inBackground(
      publish(tickSubject(sagaNameOf(sagaId)), JSON.stringify(body), `tick:${sagaId}:${due}`).catch((err: unknown) => {
        if (options.stopping()) return;
        logger.warn({ err, sagaId }, 'saga deadline not published; trying again in 1s');
        wheel.set(sagaId, clock.now() + 1_000);
      }),
    );
  });

  // Inputs a crashed instance held unacked come back only after ack_wait; a deadline
  // fired before then would overtake a reply that was in time. Only sagas written
  // before this start can have such inputs, so only their deadlines wait.
  const startedAt = clock.now();
  const holdUntil = startedAt + options.holdDeadlinesMs;
  return {
    schedule: (sagaId, summary) => {
      if (!summary || summary.due === null || TERMINAL.has(summary.status)) {
        dues.delete(sagaId);
        return wheel.set(sagaId, null);
      }
      dues.set(sagaId, summary.due);
      wheel.set(sagaId, summary.writtenAt < startedAt ? Math.max(summary.due, holdUntil) : summary.due);
    },
    stop: () => wheel.stop(),
  };
}
