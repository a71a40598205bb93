import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { capOnSyncedView } from '../../src/monitor/source-cap.ts';

/**
 * The cap as the monitor's event handler uses it, against a model of what it races with:
 * the shared bucket (truth), this instance's watch mirror of it (applies the bucket's
 * changes in order, as far as `watch` steps let it; `sync` catches it up), the tick
 * forgetting idle sources (also between a batch's decision and its writes), and restarts
 * (a new mirror that has replayed nothing yet). Batches run one at a time, as the
 * handler's do. Oracle: at the moment a batch decides, a source is cut exactly when its
 * SLA already holds `max` sources in the bucket, counting the ones the batch let in.
 */
type Action =
  | { kind: 'batch'; keys: string[]; watchBeforeAsking: number; forgetBeforeWriting: string | null }
  | { kind: 'watch'; n: number }
  | { kind: 'forget'; key: string }
  | { kind: 'restart' };

const prefixOf = (key: string) => key.split('.').slice(0, 2).join('.');

function sharedBucket() {
  const keys = new Set<string>();
  const log: Array<{ key: string; put: boolean }> = [];
  const mirror = () => {
    const entries = new Map<string, unknown>();
    let applied = 0;
    const step = (n: number) => {
      for (; n > 0 && applied < log.length; n--) {
        const op = log[applied++]!;
        if (op.put) entries.set(op.key, null);
        else entries.delete(op.key);
      }
    };
    return { entries, step, sync: async () => step(Number.POSITIVE_INFINITY) };
  };
  return {
    keys,
    mirror,
    // a write creates the key when it is missing (mutate's init), as the handler's do
    write: (key: string) => {
      keys.add(key);
      log.push({ key, put: true });
    },
    forget: (key: string) => {
      if (keys.delete(key)) log.push({ key, put: false });
    },
  };
}

const key = fc.tuple(fc.constantFrom('d.s1', 'd.s2', 'e.s1'), fc.integer({ min: 0, max: 5 })).map(([p, n]) => `${p}.src${n}`);
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('batch' as const), keys: fc.array(key, { minLength: 1, maxLength: 4 }), watchBeforeAsking: fc.nat(2), forgetBeforeWriting: fc.option(key) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('watch' as const), n: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('forget' as const), key }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
);

async function run(max: number, actions: Action[]): Promise<void> {
  const bucket = sharedBucket();
  let mirror = bucket.mirror();
  for (const a of actions) {
    if (a.kind === 'watch') mirror.step(a.n);
    else if (a.kind === 'forget') bucket.forget(a.key);
    else if (a.kind === 'restart') mirror = bucket.mirror();
    else {
      const cap = await capOnSyncedView(mirror, a.keys, max);
      mirror.step(a.watchBeforeAsking);
      const held = new Map<string, Set<string>>();
      for (const k of bucket.keys) held.set(prefixOf(k), (held.get(prefixOf(k)) ?? new Set()).add(k));
      const admitted: string[] = [];
      for (const k of a.keys) {
        const mine = held.get(prefixOf(k)) ?? new Set<string>();
        held.set(prefixOf(k), mine);
        const expected = mine.has(k) || mine.size < max;
        if (expected) mine.add(k);
        expect(cap.admits(k), `${k} asked while the bucket holds ${[...bucket.keys].join(', ') || 'nothing'}`).toBe(expected);
        if (expected) admitted.push(k);
      }
      if (a.forgetBeforeWriting !== null) bucket.forget(a.forgetBeforeWriting);
      for (const k of admitted) bucket.write(k);
      for (const prefix of new Set([...bucket.keys].map(prefixOf))) expect([...bucket.keys].filter((k) => prefixOf(k) === prefix).length, prefix).toBeLessThanOrEqual(max);
    }
  }
}

describe('monitor source cap against a lagging mirror, a racing forget and restarts', () => {
  it('a restarted monitor counts the sources already in the bucket before it lets a new one in', async () => {
    await run(1, [{ kind: 'batch', keys: ['d.s1.src0'], watchBeforeAsking: 0, forgetBeforeWriting: null }, { kind: 'restart' }, { kind: 'batch', keys: ['d.s1.src1'], watchBeforeAsking: 0, forgetBeforeWriting: null }]);
  });

  it('a source written again as the tick forgets it keeps its place: no new source joins it past the limit', async () => {
    // src1 forgotten while the mirror still shows it; the batch writes it back; the mirror applies the delete, not yet the write
    await run(1, [
      { kind: 'batch', keys: ['d.s2.src1'], watchBeforeAsking: 0, forgetBeforeWriting: null },
      { kind: 'watch', n: 1 },
      { kind: 'forget', key: 'd.s2.src1' },
      { kind: 'batch', keys: ['d.s2.src1'], watchBeforeAsking: 0, forgetBeforeWriting: null },
      { kind: 'watch', n: 1 },
      { kind: 'batch', keys: ['d.s2.src0'], watchBeforeAsking: 0, forgetBeforeWriting: null },
    ]);
  });

  it('a place freed by a forget is given to the next new source', async () => {
    await run(1, [
      { kind: 'batch', keys: ['d.s2.src0'], watchBeforeAsking: 0, forgetBeforeWriting: null },
      { kind: 'forget', key: 'd.s2.src0' },
      { kind: 'batch', keys: ['d.s2.src1'], watchBeforeAsking: 0, forgetBeforeWriting: null },
    ]);
  });

  it('any interleaving: cut exactly when the SLA is full at the decision, never more than max sources', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.array(action, { maxLength: 30 }), run), { seed: 23, numRuns: 2_000 });
  });
});
