import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { PublishError } from './batch-publisher.ts';

/** Someone else wrote the key since the revision this writer read: re-read and decide again. */
export class CasConflict extends TidemarkError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.CAS_CONFLICT, message, options);
  }
}

const LOST_RACE: ReadonlySet<number> = new Set([JetStreamApiCodes.StreamWrongLastSequence, JetStreamApiCodes.StreamWrongLastSequenceUnknown]);

/**
 * A compare-and-set that lost: `kv.create` / `kv.update` / `kv.delete` with a previous
 * revision, or a publish with an expected last subject sequence, that JetStream refused
 * by its API code; or a CasConflict raised by one of our stores.
 */
export function isCasConflict(err: unknown): boolean {
  if (err instanceof CasConflict) return true;
  if (err instanceof JetStreamApiError) return LOST_RACE.has(err.code);
  return err instanceof PublishError && err.code !== undefined && LOST_RACE.has(err.code);
}
