import { fold } from './logic/evolve.ts';
import { TERMINAL, type SagaState } from './logic/types.ts';
import type { Loaded, RecordSummary, SagaRecord, SagaStore } from './store.ts';

export type Known = Loaded & { state: SagaState };

export type SagaCache = {
  /** takes a revision unless a later one is known; `changed` hears of every revision taken */
  remember: (sagaId: string, revision: number, summary: RecordSummary | null, entry: { known?: Known; read?: () => SagaRecord | null }) => void;
  /** the latest known revision, decoded on first use */
  cached: (sagaId: string) => Known | undefined;
  /** reads the latest revision from the store and remembers it */
  read: (sagaId: string) => Promise<Known | null>;
  revisionOf: (sagaId: string) => number;
};

export const summaryOf = (record: SagaRecord): RecordSummary => ({ status: record.status, due: record.due, writtenAt: record.events.at(-1)?.at ?? 0 });

/**
 * The latest known revision of every active saga, from our own writes, our reads and
 * the watch, so an input usually costs one compare-and-set and no read. A stale entry
 * loses the compare-and-set, or is re-read before an input is dropped as a no-op.
 * Another instance's write is decoded only when an input for that saga comes here.
 */
export function sagaCache(store: SagaStore, changed: (sagaId: string, summary: RecordSummary | null) => void): SagaCache {
  const cache = new Map<string, { revision: number; known?: Known; read?: () => SagaRecord | null }>();
  const remember: SagaCache['remember'] = (sagaId, revision, summary, entry) => {
    if ((cache.get(sagaId)?.revision ?? 0) > revision) return;
    if (summary && !TERMINAL.has(summary.status)) cache.set(sagaId, { revision, ...entry });
    else cache.delete(sagaId);
    changed(sagaId, summary);
  };
  return {
    remember,
    cached: (sagaId) => {
      const entry = cache.get(sagaId);
      if (!entry || entry.known) return entry?.known;
      const record = entry.read?.();
      if (!record) return undefined;
      entry.known = { record, revision: entry.revision, state: fold(record.events) };
      return entry.known;
    },
    read: async (sagaId) => {
      const loaded = await store.load(sagaId);
      const known = loaded && { ...loaded, state: fold(loaded.record.events) };
      if (known) remember(sagaId, known.revision, summaryOf(known.record), { known });
      return known;
    },
    revisionOf: (sagaId) => cache.get(sagaId)?.revision ?? 0,
  };
}
