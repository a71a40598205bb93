import type { JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { RevisionRecord } from '../logic/revisions.ts';

/**
 * Shared state of the daily view in one NATS KV bucket, so any number of processors
 * agree on it:
 * - `dirty.<report>.<day>`: the day has events not yet folded into a revision;
 * - `open.<report>.<day>`: the day has figures that are not final yet (value: close time);
 * - `rev.<report>.<day>.g<group>`: the latest revision of a group, changed only by
 *   compare-and-set, which is what keeps revision numbers gap-free across processes.
 */
export const DAILY_BUCKET = 'tidemark_daily';

export type StoredRevision = { record: RevisionRecord; written: boolean };
export type Versioned<T> = { value: T; version: number };

const encodeGroup = (groupKey: string): string => `g${Buffer.from(groupKey).toString('base64url')}`;
const enc = new TextEncoder();

export type DayRef = { report: string; day: string };

export class RevisionConflict extends Error {
  override readonly name = 'RevisionConflict';
}

export type RevisionStore = {
  markDirty: (ref: DayRef) => Promise<void>;
  dirtyDays: () => Promise<Array<Versioned<DayRef>>>;
  /** Clears the dirty mark unless it was set again since `version` was read. */
  clearDirty: (ref: DayRef, version: number) => Promise<boolean>;
  openDays: () => Promise<Array<DayRef & { closeAt: number }>>;
  setOpen: (ref: DayRef, closeAt: number) => Promise<void>;
  clearOpen: (ref: DayRef) => Promise<void>;
  latest: (ref: DayRef, groupKey: string) => Promise<Versioned<StoredRevision> | null>;
  /** Compare-and-set on the group's latest revision; throws RevisionConflict when someone else wrote first. */
  save: (ref: DayRef, groupKey: string, value: StoredRevision, expectedVersion: number | null) => Promise<number>;
};

const parseDayKey = (key: string): DayRef => {
  const [, report, day] = key.split('.');
  return { report: report!, day: day! };
};

async function collect(iter: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const key of iter) out.push(key);
  return out;
}

const isWrongLastSequence = (err: unknown): boolean => /wrong last sequence|key exists/i.test(String((err as Error)?.message));

export async function openRevisionStore(js: JetStreamClient): Promise<RevisionStore> {
  const kv: KV = await new Kvm(js).create(DAILY_BUCKET, { history: 1 });
  const dayKey = (prefix: string, ref: DayRef) => `${prefix}.${ref.report}.${ref.day}`;
  const revKey = (ref: DayRef, groupKey: string) => `rev.${ref.report}.${ref.day}.${encodeGroup(groupKey)}`;

  return {
    markDirty: async (ref) => {
      await kv.put(dayKey('dirty', ref), enc.encode(String(Date.now())));
    },
    dirtyDays: async () => {
      const keys = await collect(await kv.keys('dirty.>'));
      const out: Array<Versioned<DayRef>> = [];
      for (const key of keys) {
        const entry = await kv.get(key);
        if (entry && entry.operation === 'PUT') out.push({ value: parseDayKey(key), version: entry.revision });
      }
      return out;
    },
    clearDirty: async (ref, version) => {
      try {
        await kv.delete(dayKey('dirty', ref), { previousSeq: version });
        return true;
      } catch (err) {
        if (isWrongLastSequence(err)) return false;
        throw err;
      }
    },
    openDays: async () => {
      const keys = await collect(await kv.keys('open.>'));
      const out: Array<DayRef & { closeAt: number }> = [];
      for (const key of keys) {
        const entry = await kv.get(key);
        if (entry && entry.operation === 'PUT') out.push({ ...parseDayKey(key), closeAt: Number(entry.string()) });
      }
      return out;
    },
    setOpen: async (ref, closeAt) => {
      await kv.put(dayKey('open', ref), enc.encode(String(closeAt)));
    },
    clearOpen: async (ref) => {
      await kv.delete(dayKey('open', ref));
    },
    latest: async (ref, groupKey) => {
      const entry = await kv.get(revKey(ref, groupKey));
      if (!entry || entry.operation !== 'PUT') return null;
      return { value: entry.json<StoredRevision>(), version: entry.revision };
    },
    save: async (ref, groupKey, value, expectedVersion) => {
      const key = revKey(ref, groupKey);
      const payload = enc.encode(JSON.stringify(value));
      try {
        return expectedVersion === null ? await kv.create(key, payload) : await kv.update(key, payload, expectedVersion);
      } catch (err) {
        if (isWrongLastSequence(err)) throw new RevisionConflict(`${key} changed since version ${expectedVersion}`);
        throw err;
      }
    },
  };
}
