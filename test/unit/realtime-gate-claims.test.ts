import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { takenForDead, type FenceValue } from '../../src/processors/realtime/fence.ts';
import { decideClaims, type Claims } from '../../src/processors/realtime/gate-claims.ts';

const standing = () => true;

describe('gate claims: which instance folds a redelivered message no checkpoint names', () => {
  it('claims what nobody holds, and says what to write', () => {
    expect(decideClaims(undefined, 'a', [5, 6, 8], standing, 0)).toEqual({ mine: [5, 6, 8], acked: 0, next: { acked: 0, by: { a: [[5, 6], [8, 8]] } } });
  });

  it('a message another standing instance holds is not mine; one it holds after a fence or retirement is taken over', () => {
    const current: Claims = { acked: 0, by: { b: [[5, 5]], c: [[6, 6]] } };
    expect(decideClaims(current, 'a', [5], standing, 0)).toEqual({ mine: [], acked: 0 });
    const decision = decideClaims(current, 'a', [5, 6], (holder) => holder !== 'c', 0);
    expect(decision.mine).toEqual([6]);
    expect(decision.next).toEqual({ acked: 0, by: { b: [[5, 5]], a: [[6, 6]] } });
  });

  it('an instance not read yet stands (it may have registered and claimed after the caller read the keys)', () => {
    expect(decideClaims({ acked: 0, by: { newcomer: [[7, 7]] } }, 'a', [7], (holder) => holder !== 'gone', 0).mine).toEqual([]);
  });

  it('what this instance already holds is mine without a write (a retried claim whose first write landed)', () => {
    expect(decideClaims({ acked: 0, by: { a: [[3, 4]] } }, 'a', [3, 4], () => false, 0)).toEqual({ mine: [3, 4], acked: 0 });
  });

  it('at or below the ack floor nothing is claimed: acked means folded and committed by whoever acked it; claims there are dropped on the next write', () => {
    const current: Claims = { acked: 4, by: { b: [[2, 6]] } };
    // the caller's floor is older than the one written: the written one counts
    expect(decideClaims(current, 'a', [3, 4], standing, 1)).toEqual({ mine: [], acked: 4 });
    expect(decideClaims(current, 'a', [9], standing, 5)).toEqual({ mine: [9], acked: 5, next: { acked: 5, by: { b: [[6, 6]], a: [[9, 9]] } } });
  });

  /**
   * Several gates deciding at once against one compare-and-set register, as the arbiter
   * runs them: each reads the value, decides, and writes only if nobody wrote since its
   * read (else it reads again). Instances are fenced at any point (for good: a fenced
   * instance stops, its claims are void for whoever reads it fenced). At most one
   * standing instance ever gets a message; every message a standing instance wants ends
   * with one.
   */
  it('property: of gates deciding the same messages in any interleaving, at most one standing instance gets each, and each gets one', () => {
    const ids = ['a', 'b', 'c'] as const;
    fc.assert(
      fc.property(
        fc.array(fc.uniqueArray(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 6 }), { minLength: ids.length, maxLength: ids.length }),
        fc.array(fc.record({ who: fc.integer({ min: 0, max: 2 }), op: fc.constantFrom('read', 'write', 'write', 'fence') }), { maxLength: 40 }),
        (gates, steps) => {
          let value: Claims | undefined;
          let version = 0;
          const fenced = new Set<string>();
          const pending = new Map<string, Set<number>>(ids.map((id, i) => [id, new Set(gates[i]!)] as const));
          const snaps = new Map<string, { value: Claims | undefined; version: number; fenced: Set<string> }>();
          const winners = new Map<number, string[]>();
          const win = (id: string, seqs: readonly number[]) => {
            for (const seq of seqs) {
              // an earlier winner that still stands would count it too
              for (const earlier of winners.get(seq) ?? []) if (earlier !== id) expect(fenced.has(earlier), `message ${seq}: ${id} won it while ${earlier}, which won it before, stands`).toBe(true);
              winners.set(seq, [...(winners.get(seq) ?? []), id]);
              pending.get(id)!.delete(seq);
            }
          };
          const read = (id: string) => snaps.set(id, { value, version, fenced: new Set(fenced) });
          // one attempt: true when the instance wrote or had nothing to write
          const attempt = (id: string): boolean => {
            const snap = snaps.get(id);
            if (!snap) {
              read(id);
              return false;
            }
            snaps.delete(id);
            const decision = decideClaims(snap.value, id, [...pending.get(id)!], (holder) => !snap.fenced.has(holder), 0);
            if (decision.next && snap.version !== version) return false;
            if (decision.next) {
              value = JSON.parse(JSON.stringify(decision.next)) as Claims;
              version++;
            }
            win(id, decision.mine);
            return true;
          };
          for (const { who, op } of steps) {
            const id = ids[who]!;
            if (fenced.has(id)) continue;
            if (op === 'read') read(id);
            else if (op === 'write') attempt(id);
            else if (fenced.size < ids.length - 1) fenced.add(id);
          }
          // the standing ones go on deciding until each has what is left to it, or sees it held
          for (let round = 0; round < 20; round++) for (const id of ids) if (!fenced.has(id)) while (!attempt(id));
          for (const [id, wanted] of ids.map((id, i) => [id, gates[i]!] as const)) {
            if (fenced.has(id)) continue;
            for (const seq of wanted) {
              const standingWinners = (winners.get(seq) ?? []).filter((w) => !fenced.has(w));
              expect(standingWinners, `message ${seq}`).toHaveLength(1);
            }
          }
        },
      ),
      { numRuns: 300, seed: 2121 },
    );
  });
});

describe('takenForDead: when a gate stops waiting for an instance and fences it', () => {
  const LIVENESS = 30_000;
  const NOW = 1_000_000;
  const key = (v: Partial<FenceValue>): FenceValue => ({ n: 3, at: NOW - 1_000, folded: [], state: 'live', ...v });

  it('silent for the liveness', () => {
    expect(takenForDead(key({ at: NOW - LIVENESS - 1, since: NOW - LIVENESS - 1 }), NOW, LIVENESS)).toBe(true);
    expect(takenForDead(key({ at: NOW - LIVENESS, since: NOW - LIVENESS }), NOW, LIVENESS)).toBe(false);
  });

  it('committing, but none of its consumer-progress requests answered for the liveness: its `since` stands still and every gate would wait on it', () => {
    expect(takenForDead(key({ since: NOW - 1_000 - LIVENESS - 1, joined: 0 }), NOW, LIVENESS)).toBe(true);
    expect(takenForDead(key({ since: NOW - 1_000 - LIVENESS, joined: 0 }), NOW, LIVENESS)).toBe(false);
    expect(takenForDead(key({ since: NOW - 2_000, joined: 0 }), NOW, LIVENESS)).toBe(false);
  });

  it('no answer yet since it registered: the registration time stands in, also for an answer older than the registration (a rejoin)', () => {
    expect(takenForDead(key({ since: 0, joined: NOW - 5_000 }), NOW, LIVENESS)).toBe(false);
    expect(takenForDead(key({ since: 0, joined: NOW - 1_000 - LIVENESS - 1 }), NOW, LIVENESS)).toBe(true);
    expect(takenForDead(key({ since: NOW - 10 * LIVENESS, joined: NOW - 5_000 }), NOW, LIVENESS)).toBe(false);
  });

  it('an earlier version (no `since`, or a registration without `joined`) is judged by its silence only; fenced and retired keys never', () => {
    expect(takenForDead(key({}), NOW, LIVENESS)).toBe(false);
    expect(takenForDead(key({ since: 0 }), NOW, LIVENESS)).toBe(false);
    expect(takenForDead(key({ state: 'fenced', at: 0 }), NOW, LIVENESS)).toBe(false);
    expect(takenForDead(key({ state: 'retired', at: 0 }), NOW, LIVENESS)).toBe(false);
  });
});
