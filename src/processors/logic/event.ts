/**
 * The part of the canonical event (src/core/envelope.ts) that the projection logic
 * reads. Declared structurally here so these modules stay pure and independent of
 * how the envelope is parsed; any envelope object satisfies it.
 */
export interface LogicEvent {
  readonly id: string;
  readonly type: string;
  readonly source: string;
  readonly key: string | null;
  /** Event time, epoch milliseconds. */
  readonly occurredAt: number;
  /** When JetStream stored it, epoch milliseconds. */
  readonly receivedAt: number;
  readonly data: Readonly<Record<string, unknown>>;
  readonly seq: number;
}
