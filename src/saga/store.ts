import type { KV } from '@nats-io/kv';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { dueAt, fold } from './logic/evolve.ts';
import type { SagaEvent, SagaState, SagaStatus } from './logic/types.ts';

/**
 * One saga's log as stored: its events, plus the status and next due time derived
 * from them so watchers and listings need not fold.
 */
export type SagaRecord = { v: 1; sagaId: string; name: string; status: SagaStatus; due: number | null; events: SagaEvent[] };
export type Loaded = { record: SagaRecord; revision: number };

/** `state` is `fold(events)` when the caller already has it. */
export const recordOf = (events: SagaEvent[], state: SagaState = fold(events)): SagaRecord => ({
  v: 1,
  sagaId: state.sagaId,
  name: state.name,
  status: state.status,
  due: dueAt(state),
  events,
});

const decoder = new TextDecoder();
export const decodeRecord = (data: Uint8Array): SagaRecord => JSON.parse(decoder.decode(data)) as SagaRecord;

const isWrongLastSequence = (err: unknown): boolean => /wrong last sequence|key exists/i.test(String((err as Error)?.message));

export type SagaStore = {
  load: (sagaId: string) => Promise<Loaded | null>;
  /** Compare-and-set: `expected` null creates; throws SAGA_STATE_CONFLICT when someone else wrote first. */
  save: (record: SagaRecord, expected: number | null) => Promise<number>;
  list: (filter?: string) => Promise<Loaded[]>;
  /**
   * Every saga's latest revision, then each change as it happens; `read` decodes the
   * record (null once deleted) only for a caller that needs it. The returned function stops it.
   */
  watch: (onChange: (sagaId: string, revision: number, read: () => SagaRecord | null) => void, onError: (err: unknown) => void) => Promise<() => void>;
};

export function sagaStore(kv: KV): SagaStore {
  const load = async (sagaId: string): Promise<Loaded | null> => {
    const entry = await kv.get(sagaId);
    if (!entry || entry.operation !== 'PUT') return null;
    return { record: decodeRecord(entry.value), revision: entry.revision };
  };
  return {
    load,
    save: async (record, expected) => {
      const payload = JSON.stringify(record);
      try {
        return expected === null ? await kv.create(record.sagaId, payload) : await kv.update(record.sagaId, payload, expected);
      } catch (err) {
        if (isWrongLastSequence(err)) throw new TidemarkError(ErrorCodes.SAGA_STATE_CONFLICT, `saga ${record.sagaId} changed since revision ${expected}`, { cause: err });
        throw err;
      }
    },
    list: async (filter = '>') => {
      const keys: string[] = [];
      for await (const key of await kv.keys(filter)) keys.push(key);
      const out: Loaded[] = [];
      // a few hundred reads in flight at a time, not one per key at once
      for (let i = 0; i < keys.length; i += 256) {
        for (const loaded of await Promise.all(keys.slice(i, i + 256).map(load))) if (loaded) out.push(loaded);
      }
      return out;
    },
    watch: async (onChange, onError) => {
      const watcher = await kv.watch({ key: '>' });
      void (async () => {
        for await (const entry of watcher) onChange(entry.key, entry.revision, () => (entry.operation === 'PUT' ? decodeRecord(entry.value) : null));
      })().catch(onError);
      return () => watcher.stop();
    },
  };
}

export const isConflict = (err: unknown): boolean => err instanceof TidemarkError && err.code === ErrorCodes.SAGA_STATE_CONFLICT;
