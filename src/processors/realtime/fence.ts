/**
 * The arbiter of which realtime rows count: one NATS KV key per processor instance
 * holding the number of its last committed checkpoint and the EVENTS sequences that
 * checkpoint names. KV keys are linearisable: every change is a compare-and-set on the
 * key's revision, so an instance committing checkpoint k+1 and another instance fencing
 * it at k cannot both win.
 *
 * An instance commits a checkpoint in three steps: it inserts its rows (numbered k+1)
 * into ClickHouse, compare-and-sets its key from k to k+1, and only then acks. One that
 * takes it for dead compare-and-sets the key from k to `fenced` at k, writes a fence row
 * in ClickHouse (realtime_fences: its rows numbered above k do not count), and only then
 * folds its messages that checkpoint k does not name. Whichever wins, the messages count
 * once: either in the instance's committed rows or in the fencer's.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { ErrorCodes, TidemarkError } from '../../core/errors.ts';
import { BUCKETS, openBucket } from '../../nats/buckets.ts';
import { isCasConflict } from '../../nats/cas.ts';
import { retryTransient } from '../../nats/retry.ts';
import type { SeqRange } from '../../nats/seq-ranges.ts';
import { decideClaims, type ClaimDecision, type Claims } from './gate-claims.ts';

export const FENCE_BUCKET = BUCKETS.realtimeFence;

/**
 * One instance's key. `n`: its last committed checkpoint (for `fenced`: the one its rows
 * count up to); `at`: when that checkpoint was taken, on the writer's clock; `folded`:
 * the EVENTS sequences above the ack floor that checkpoint names.
 *
 * `since`: when the instance sent the latest request for the EVENTS consumer's progress
 * that was answered before this checkpoint was taken. The consumer's server sends that
 * answer on the connection the deliveries come by, behind every message it sent there
 * before the request, and the client hands messages over in the order they come. So
 * every first delivery sent to this instance before `since` had been read, and folded
 * on arrival (or dropped), when this checkpoint was taken: it names each one that counts
 * here. A first delivery read late (the process paused, the connection slow) is thus
 * named before a redelivery of it can be decided elsewhere. 0: no answer yet (a
 * registration). Unset (no consumer, or a processor of an earlier version): `at` stands in.
 *
 * `joined`: when this instance id registered, on its clock (unset: an earlier version).
 * With `since` it says how long the instance has gone without an answer (`takenForDead`).
 */
export type FenceValue = { n: number; at: number; since?: number; joined?: number; folded: SeqRange[]; state: 'live' | 'retired' | 'fenced'; by?: string };

/**
 * Whether a gate takes this instance for dead, and fences it before deciding without it:
 * it committed nothing for the liveness (stopped, paused, cut off), or its checkpoints
 * went on while none of its consumer-progress requests was answered for the liveness
 * (`at` − `since`, both on its own clock). Such an instance's `since` stands still, and
 * every other instance's redeliveries would wait on it for as long as it does; fenced,
 * its last checkpoint is all it counts, which needs no `since`, and it goes on under a
 * new id. Since it registered, its registration time stands in for an answer not yet
 * come. Fencing is sound whatever the reason (the compare-and-set decides, see above);
 * this only chooses when a gate stops waiting.
 */
export function takenForDead(value: FenceValue, now: number, livenessMs: number): boolean {
  if (value.state !== 'live') return false;
  if (value.at < now - livenessMs) return true;
  // an earlier version writes no `since` or no `joined`: only its silence counts
  if (value.since === undefined || (value.since === 0 && value.joined === undefined)) return false;
  return value.at - Math.max(value.since, value.joined ?? 0) > livenessMs;
}

/** The key of the gate claims (gate-claims.ts); no instance id has this form (instance.ts: host-pid-random). */
export const CLAIMS_KEY = '_gate_claims';

/** A key as read, with the revision a compare-and-set on it must name. */
export type FenceEntry = { value: FenceValue; revision: number };

/** This instance's fold was dropped because another one fenced it: the messages are not acked, they come again. */
export class RealtimeFenced extends TidemarkError {
  constructor(instance: string) {
    super(ErrorCodes.REALTIME_FENCED, `realtime instance ${instance} was fenced by another processor (taken for dead); its unacked folds are dropped and its messages come again`);
  }
}

/** The realtime view stopped before this fold was in a committed checkpoint: the messages are not acked, they come again. */
export class RealtimeStopped extends TidemarkError {
  constructor(instance: string) {
    super(ErrorCodes.REALTIME_STOPPED, `realtime instance ${instance} stopped before its fold was committed; the messages are not acked and come again`);
  }
}

export type Arbiter = {
  /** Creates this instance's key at checkpoint `n`; before it consumes, so others never miss an instance that holds messages. */
  register: (instance: string, n: number, at: number) => Promise<void>;
  /**
   * Compare-and-sets this instance's key to `next` from the revision it last wrote.
   * 'fenced' when another instance fenced it; throws when the outcome is unknown (the
   * next checkpoint tries again from the same revision).
   */
  commit: (instance: string, next: FenceValue) => Promise<'committed' | 'fenced'>;
  /** Every instance's key but `self`'s. */
  others: (self: string) => Promise<Map<string, FenceEntry>>;
  /**
   * Fences `instance` at the checkpoint `seen` names, if the key is still at `seen`'s
   * revision: the fenced value, or undefined when the instance committed meanwhile (alive).
   */
  fence: (instance: string, seen: FenceEntry, by: string) => Promise<FenceValue | undefined>;
  /**
   * Claims the redelivered messages `seqs` a gate of `instance` found in no committed
   * checkpoint, by a compare-and-set on one key (gate-claims.ts): it folds only those it
   * holds the claim for. `stands`: false for a holder whose key was read fenced or retired.
   */
  claim: (instance: string, seqs: readonly number[], stands: (holder: string) => boolean, floor: number) => Promise<ClaimDecision>;
};

const enc = new TextEncoder();
const encode = (value: FenceValue | Claims) => enc.encode(JSON.stringify(value));

/**
 * `kv` holds the keys; `listKeys` names them all. From the bucket's stream info, one
 * request: `kv.keys()` runs an ordered consumer that, measured in the stall test on a
 * loaded machine, sometimes never finished, and a survivor waiting on it never fenced.
 */
export function kvArbiter(kv: KV, listKeys: () => Promise<string[]>): Arbiter {
  // the revision of this process's last write per key: the next compare-and-set names it
  const written = new Map<string, number>();
  const read = async (key: string): Promise<FenceEntry | undefined> => {
    const entry = await retryTransient(() => kv.get(key));
    return entry && entry.operation === 'PUT' ? { value: entry.json<FenceValue>(), revision: entry.revision } : undefined;
  };
  // final states never change: read once
  const settled = new Map<string, FenceEntry>();

  return {
    register: async (instance, n, at) => {
      try {
        written.set(instance, await retryTransient(() => kv.create(instance, encode({ n, at, since: 0, joined: at, folded: [], state: 'live' }))));
      } catch (err) {
        // a retried create whose first attempt landed: the key is ours as we wrote it
        const now = isCasConflict(err) ? await read(instance) : undefined;
        if (now?.value.state !== 'live' || now.value.n !== n || now.value.at !== at) throw err;
        written.set(instance, now.revision);
      }
    },
    commit: async (instance, next) => {
      const revision = written.get(instance);
      if (revision === undefined) throw new TidemarkError(ErrorCodes.REALTIME_FENCED, `realtime instance ${instance} is not registered`);
      try {
        written.set(instance, await retryTransient(() => kv.update(instance, encode(next), revision)));
        return 'committed';
      } catch (err) {
        // a conflict, or no answer: what the key holds now says which
        const now = await read(instance);
        if (now?.value.state === 'fenced' || now === undefined) return 'fenced';
        if (now.value.n === next.n) {
          written.set(instance, now.revision);
          return 'committed';
        }
        throw err;
      }
    },
    others: async (self) => {
      const keys = (await retryTransient(listKeys)).filter((key) => key !== self && key !== CLAIMS_KEY);
      const out = new Map<string, FenceEntry>();
      await Promise.all(
        keys.map(async (key) => {
          const entry = settled.get(key) ?? (await read(key));
          if (!entry) return;
          if (entry.value.state !== 'live') settled.set(key, entry);
          out.set(key, entry);
        }),
      );
      return out;
    },
    fence: async (instance, seen, by) => {
      const fenced: FenceValue = { ...seen.value, state: 'fenced', by };
      try {
        await retryTransient(() => kv.update(instance, encode(fenced), seen.revision));
        return fenced;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        // lost: either it committed (alive), or another instance fenced it (or a retry of ours landed)
        const now = await read(instance);
        return now?.value.state === 'fenced' ? now.value : undefined;
      }
    },
    claim: async (instance, seqs, stands, floor) => {
      for (;;) {
        const entry = await retryTransient(() => kv.get(CLAIMS_KEY));
        const decision = decideClaims(entry?.operation === 'PUT' ? entry.json<Claims>() : undefined, instance, seqs, stands, floor);
        if (!decision.next) return decision;
        const next = encode(decision.next);
        try {
          await retryTransient(() => (entry ? kv.update(CLAIMS_KEY, next, entry.revision) : kv.create(CLAIMS_KEY, next)));
          return decision;
        } catch (err) {
          // another gate claimed meanwhile (or a retry of ours landed): read again and decide again
          if (!isCasConflict(err)) throw err;
        }
      }
    },
  };
}

export async function openArbiter(js: JetStreamClient, replicas: number): Promise<Arbiter> {
  const kv = await openBucket(js, { name: FENCE_BUCKET, replicas });
  const jsm = await js.jetstreamManager();
  const prefix = `$KV.${FENCE_BUCKET}.`;
  const listKeys = async () => Object.keys((await jsm.streams.info(`KV_${FENCE_BUCKET}`, { subjects_filter: `${prefix}>` })).state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
  return kvArbiter(kv, listKeys);
}
