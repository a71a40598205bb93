import type { JetStreamClient } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import { BUCKETS, openBucket } from '../../nats/buckets.ts';
import type { RevisionRecord } from '../logic/revisions.ts';
import { followWatch, type FollowedWatch } from '../../nats/kv-watch.ts';
import { retryTransient } from '../../nats/retry.ts';
import { CasConflict, isCasConflict } from '../../nats/cas.ts';
import { groupToken } from '../../core/group-token.ts';

/**
 * Shared state of the daily view in one NATS KV bucket, so any number of processors
 * agree on it:
 * - `dirty.<report>.<day>`: the day has events not yet folded into a revision;
 * - `open.<report>.<day>`: the day has figures that are not final yet (value: close time);
 * - `rev.<report>.<day>.g<group>` (`h<hash>` for a long group): the latest revision of a group, changed only by
 *   compare-and-set, which is what keeps revision numbers gap-free across processes.
 */
export const DAILY_BUCKET = BUCKETS.daily;

/**
 * `amends`: set while the record is not yet written and its ReportAmended not yet
 * published: the record it amends (null for a group first seen after close). Whoever
 * repairs the record after a crash publishes the alert too.
 */
export type StoredRevision = { record: RevisionRecord; written: boolean; amends?: RevisionRecord | null };
export type Versioned<T> = { value: T; version: number };

const enc = new TextEncoder();

export type DayRef = { report: string; day: string };

export type RevisionStore = {
  markDirty: (ref: DayRef) => Promise<void>;
  dirtyDays: () => Promise<Array<Versioned<DayRef>>>;
  /** Clears the dirty mark unless it was set again since `version` was read. */
  clearDirty: (ref: DayRef, version: number) => Promise<boolean>;
  openDays: () => Promise<Array<DayRef & { closeAt: number }>>;
  setOpen: (ref: DayRef, closeAt: number) => Promise<void>;
  clearOpen: (ref: DayRef) => Promise<void>;
  latest: (ref: DayRef, groupKey: string) => Promise<Versioned<StoredRevision> | null>;
  /** Compare-and-set on the group's latest revision; throws CasConflict when someone else wrote first. */
  save: (ref: DayRef, groupKey: string, value: StoredRevision, expectedVersion: number | null) => Promise<number>;
  close: () => Promise<void>;
};

const parseDayKey = (key: string): DayRef => {
  const [, report, day] = key.split('.');
  return { report: report!, day: day! };
};

type PrefixWatch = FollowedWatch & { entries: Map<string, KvEntry> };

/**
 * A live view of the keys under a prefix. Listing keys scans the bucket and never
 * finishes while a key keeps changing (and today's dirty mark changes with every
 * batch), so the store follows a watch instead, made anew when a write of ours does
 * not come back through it (kv-watch.ts).
 */
async function watchPrefix(kv: KV, prefix: string): Promise<PrefixWatch> {
  const entries = new Map<string, KvEntry>();
  const followed = await followWatch(
    () => kv.watch({ key: `${prefix}.>` }),
    (entry) => {
      if (entry.operation === 'PUT') entries.set(entry.key, entry);
      else entries.delete(entry.key);
    },
  );
  return { ...followed, entries };
}

export async function openRevisionStore(js: JetStreamClient, replicas = 1): Promise<RevisionStore> {
  const kv: KV = await openBucket(js, { name: DAILY_BUCKET, replicas });
  const dayKey = (prefix: string, ref: DayRef) => `${prefix}.${ref.report}.${ref.day}`;
  const revKey = (ref: DayRef, groupKey: string) => `rev.${ref.report}.${ref.day}.${groupToken(groupKey)}`;

  const dirty = await watchPrefix(kv, 'dirty');
  const open = await watchPrefix(kv, 'open');

  return {
    markDirty: async (ref) => {
      dirty.wrote(await retryTransient(() => kv.put(dayKey('dirty', ref), enc.encode(String(Date.now())))));
    },
    dirtyDays: async () => [...dirty.entries.values()].map((entry) => ({ value: parseDayKey(entry.key), version: entry.revision })),
    clearDirty: async (ref, version) => {
      try {
        await retryTransient(() => kv.delete(dayKey('dirty', ref), { previousSeq: version }));
        return true;
      } catch (err) {
        if (isCasConflict(err)) return false;
        throw err;
      }
    },
    openDays: async () => [...open.entries.values()].map((entry) => ({ ...parseDayKey(entry.key), closeAt: Number(entry.string()) })),
    setOpen: async (ref, closeAt) => {
      open.wrote(await retryTransient(() => kv.put(dayKey('open', ref), enc.encode(String(closeAt)))));
    },
    clearOpen: async (ref) => {
      await retryTransient(() => kv.delete(dayKey('open', ref)));
    },
    latest: async (ref, groupKey) => {
      const entry = await retryTransient(() => kv.get(revKey(ref, groupKey)));
      if (!entry || entry.operation !== 'PUT') return null;
      return { value: entry.json<StoredRevision>(), version: entry.revision };
    },
    save: async (ref, groupKey, value, expectedVersion) => {
      const key = revKey(ref, groupKey);
      const payload = enc.encode(JSON.stringify(value));
      try {
        // a retried write that had been stored before its answer was lost comes back as a conflict; the caller re-reads
        return await retryTransient(() => (expectedVersion === null ? kv.create(key, payload) : kv.update(key, payload, expectedVersion)));
      } catch (err) {
        if (isCasConflict(err)) throw new CasConflict(`${key} changed since version ${expectedVersion}`, { cause: err });
        throw err;
      }
    },
    close: async () => {
      dirty.stop();
      open.stop();
    },
  };
}
