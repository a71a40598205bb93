import type { JsMsg } from '@nats-io/jetstream';
import type { SagaStatus } from './logic/types.ts';

/** The statuses in which a saga started here holds its place. */
export const UNDER_WAY: ReadonlySet<SagaStatus> = new Set(['new', 'running', 'compensating']);

/** A trigger held this long would be redelivered: the server is told it is in hand. */
const WORKING_EVERY_MS = 5_000;

export type Admission = {
  /** waits until a trigger may start a saga here (or the orchestrator stops) */
  admit: (msg: JsMsg) => Promise<void>;
  /** the trigger admitted by `admit` has been handled */
  admitted: () => void;
  /** a saga started here and under way */
  started: (sagaId: string) => void;
  /** the saga ended or parked: its place goes to the next trigger waiting */
  release: (sagaId: string) => void;
  /** lets every waiting trigger go, on stop */
  stop: () => void;
};

/**
 * Admission of triggers: each saga started here holds a place until it ends or parks,
 * so new sagas beyond `maxActive` wait and never starve the running ones.
 */
export function sagaAdmission(maxActive: number, stopping: () => boolean, safely: (fn: () => void) => void): Admission {
  const startedHere = new Set<string>();
  // triggers admitted and still being handled: they count before their saga is stored
  let starting = 0;
  const waiting: Array<() => void> = [];
  return {
    admit: async (msg) => {
      while (startedHere.size + starting >= maxActive && !stopping()) {
        await new Promise<void>((resolve) => {
          const wake = () => {
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(() => {
            const at = waiting.indexOf(wake);
            if (at >= 0) waiting.splice(at, 1);
            resolve();
          }, WORKING_EVERY_MS);
          waiting.push(wake);
        });
        safely(() => msg.working());
      }
      starting++;
    },
    admitted: () => {
      starting--;
      waiting.shift()?.();
    },
    started: (sagaId) => {
      startedHere.add(sagaId);
    },
    release: (sagaId) => {
      if (startedHere.delete(sagaId)) waiting.shift()?.();
    },
    stop: () => {
      for (const resolve of waiting.splice(0)) resolve();
    },
  };
}
