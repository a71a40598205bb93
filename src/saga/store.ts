import type { KV } from '@nats-io/kv';
import type { BatchPublisher } from '../nats/batch-publisher.ts';
import { dueAt, fold } from './logic/evolve.ts';
import type { SagaEvent, SagaState, SagaStatus } from './logic/types.ts';
import { followWatch, type FollowedWatch } from '../nats/kv-watch.ts';
import { retryTransient } from '../nats/retry.ts';
import { CasConflict, isCasConflict } from '../nats/cas.ts';

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

/** What deadlines need of a revision: its status, its next due time and when it was written. */
export type RecordSummary = { status: SagaStatus; due: number | null; writtenAt: number };

// recordOf puts status and due ahead of the events, so they sit near the start of the JSON
const SUMMARY = /"status":"([a-z]+)","due":(null|\d+)/;

/**
 * The summary without parsing the whole log: every instance sees every write of every
 * other instance, and most of those it never needs in full.
 */
export function summarize(data: Uint8Array, writtenAt: number): RecordSummary {
  const match = SUMMARY.exec(decoder.decode(data.subarray(0, 640)));
  if (match) return { status: match[1] as SagaStatus, due: match[2] === 'null' ? null : Number(match[2]), writtenAt };
  const record = decodeRecord(data);
  return { status: record.status, due: record.due, writtenAt };
}

export type SagaStore = {
  load: (sagaId: string) => Promise<Loaded | null>;
  /** Compare-and-set: `expected` null creates; throws CasConflict when someone else wrote first. */
  save: (record: SagaRecord, expected: number | null) => Promise<number>;
  list: (filter?: string) => Promise<Loaded[]>;
  /**
   * Every saga's latest revision, then each change as it happens, with its summary
   * (null once deleted); `read` decodes the whole record only for a caller that needs
   * it. The watch is made anew whenever it ends, fails, or a write of this store does
   * not come back through it in time (kv-watch.ts), so a change may be told twice. The
   * returned function stops it.
   */
  watch: (onChange: (sagaId: string, revision: number, summary: RecordSummary | null, read: () => SagaRecord | null) => void) => Promise<FollowedWatch>;
};

/** How long a write of this store may take to show in its watch before the watch is made anew: every instance sees every write of every other, so a busy watch may lag more than the revision store's. */
export const SAGA_WATCH_LAG_MS = 15_000;

/**
 * The saga log in a KV bucket. Writes go through `publisher` as plain JetStream
 * publishes on the bucket's subject with the expected last sequence (what `kv.update`
 * sends), sparing the two Error objects and the timer `kv.update` builds per request.
 */
export function sagaStore(kv: KV, publisher: BatchPublisher, bucket: string, watchLagMs = SAGA_WATCH_LAG_MS): SagaStore {
  // every live watch is told of this store's writes: the probe that shows a watch went quiet
  const watches = new Set<FollowedWatch>();
  const wrote = (revision: number): number => {
    for (const watch of watches) watch.wrote(revision);
    return revision;
  };
  const cas = async (key: string, payload: string, expected: number): Promise<number> =>
    // a retried write that had been stored comes back as a conflict, which callers already handle by re-reading
    wrote((await retryTransient(() => publisher.publishOne({ subject: `$KV.${bucket}.${key}`, data: payload, headers: { 'Nats-Expected-Last-Subject-Sequence': String(expected) } }))).seq);
  const load = async (sagaId: string): Promise<Loaded | null> => {
    const entry = await retryTransient(() => kv.get(sagaId));
    if (!entry || entry.operation !== 'PUT') return null;
    return { record: decodeRecord(entry.value), revision: entry.revision };
  };
  return {
    load,
    save: async (record, expected) => {
      const payload = JSON.stringify(record);
      try {
        if (expected !== null) return await cas(record.sagaId, payload, expected);
        // a saga id is written once and never deleted, so it normally has no entry at all;
        // kv.create also takes over a key whose last entry is a delete marker
        return await cas(record.sagaId, payload, 0).catch((err: unknown) => (isCasConflict(err) ? kv.create(record.sagaId, payload).then(wrote) : Promise.reject(err)));
      } catch (err) {
        if (isCasConflict(err)) throw new CasConflict(`saga ${record.sagaId} changed since revision ${expected}`, { cause: err });
        throw err;
      }
    },
    list: async (filter = '>') => {
      // kv.keys() also hands out keys written while it lists, so a saga under way can come twice
      const unique = new Set<string>();
      for await (const key of await kv.keys(filter)) unique.add(key);
      const keys = [...unique];
      const out: Loaded[] = [];
      // a few hundred reads in flight at a time, not one per key at once
      for (let i = 0; i < keys.length; i += 256) {
        for (const loaded of await Promise.all(keys.slice(i, i + 256).map(load))) if (loaded) out.push(loaded);
      }
      return out;
    },
    watch: async (onChange) => {
      const followed = await followWatch(
        () => kv.watch({ key: '>' }),
        (entry) => {
          const put = entry.operation === 'PUT';
          onChange(entry.key, entry.revision, put ? summarize(entry.value, entry.created.getTime()) : null, () => (put ? decodeRecord(entry.value) : null));
        },
        watchLagMs,
      );
      watches.add(followed);
      return {
        ...followed,
        stop: () => {
          watches.delete(followed);
          followed.stop();
        },
      };
    },
  };
}

