import { businessDay } from '../../core/business-day.ts';
import { discrepancy, type Finding } from './discrepancy.ts';
import { fieldDiffs } from './values.ts';
import type { Discrepancy, ReconRecord, ReconSpec, Side } from './types.ts';

/**
 * Streaming match state of one key, kept in NATS KV and changed only by
 * compare-and-set, so any number of reconcilers and any crash leave it consistent.
 *
 * - `expected`: one side has arrived, the other is awaited until `deadline`
 *   (first arrival + lag);
 * - `matched` / `mismatched`: both sides arrived within the window;
 * - `missing`: the window expired one-sided (MissingInA / MissingInB raised);
 * - `late`: the awaited side arrived after it was declared missing; the finding stands.
 *
 * `refs` (stream sequences) make a redelivered message a no-op, and a different
 * message on a side that already has one a Duplicate. `outbox` holds findings the
 * state has committed to but that are not yet stored downstream: they are emitted,
 * then removed, so a crash in between re-emits rather than loses them.
 */
export type PendingState = 'expected' | 'matched' | 'mismatched' | 'missing' | 'late';
export type SeenSide = { first: ReconRecord | null; refs: string[] };
export type PendingEntry = {
  key: string[];
  state: PendingState;
  deadline: number | null;
  a: SeenSide;
  b: SeenSide;
  outbox: Discrepancy[];
};

export type Transition = { entry: PendingEntry; changed: boolean };

const other = (side: Side): Side => (side === 'A' ? 'B' : 'A');
const seen = (entry: PendingEntry, side: Side): SeenSide => (side === 'A' ? entry.a : entry.b);

/** A's record decides the period when there is one: A is the reference, as in batch mode. */
const periodOf = (entry: PendingEntry, timeZone: string): string => businessDay((entry.a.first ?? entry.b.first)!.time, timeZone);

function raise(spec: ReconSpec, entry: PendingEntry, finding: Finding): PendingEntry {
  const found = discrepancy(spec.name, periodOf(entry, spec.timeZone), finding);
  // a Duplicate raised again (a third copy) replaces its earlier, lower count
  return { ...entry, outbox: [...entry.outbox.filter((d) => d.id !== found.id), found] };
}

const withSide = (entry: PendingEntry, side: Side, value: SeenSide): PendingEntry => (side === 'A' ? { ...entry, a: value } : { ...entry, b: value });

/** A record (stream message `ref`) of `side` arrived at `arrivedAt`. */
export function arrive(spec: ReconSpec, current: PendingEntry | null, side: Side, ref: string, record: ReconRecord, arrivedAt: number): Transition {
  if (current === null) {
    const empty: SeenSide = { first: null, refs: [] };
    const entry: PendingEntry = { key: record.key, state: 'expected', deadline: arrivedAt + spec.lag, a: empty, b: empty, outbox: [] };
    return { entry: withSide(entry, side, { first: record, refs: [ref] }), changed: true };
  }
  const mine = seen(current, side);
  if (mine.refs.includes(ref)) return { entry: current, changed: false };
  if (mine.first !== null) {
    const entry = withSide(current, side, { first: mine.first, refs: [...mine.refs, ref] });
    return { entry: raise(spec, entry, { type: 'Duplicate', side, key: entry.key, count: mine.refs.length + 1, [side === 'A' ? 'a' : 'b']: mine.first }), changed: true };
  }
  const entry = withSide(current, side, { first: record, refs: [ref] });
  if (current.state === 'missing') return { entry: { ...entry, state: 'late' }, changed: true };
  const a = entry.a.first!;
  const b = entry.b.first!;
  const diffs = fieldDiffs(spec, a, b);
  if (diffs.length === 0) return { entry: { ...entry, state: 'matched', deadline: null }, changed: true };
  return { entry: raise(spec, { ...entry, state: 'mismatched', deadline: null }, { type: 'Mismatch', key: entry.key, diffs, a, b }), changed: true };
}

/**
 * The window of the record `ref` of `side` has passed (the caller checked both the
 * clock and the other feed's progress). Missing only if the other side never came.
 */
export function expire(spec: ReconSpec, current: PendingEntry, side: Side, ref: string): Transition {
  if (current.state !== 'expected' || !seen(current, side).refs.includes(ref) || seen(current, other(side)).first !== null) {
    return { entry: current, changed: false };
  }
  const missing = { ...current, state: 'missing' as const, deadline: null };
  const finding: Finding = side === 'A' ? { type: 'MissingInB', key: current.key, a: current.a.first } : { type: 'MissingInA', key: current.key, b: current.b.first };
  return { entry: raise(spec, missing, finding), changed: true };
}

/** Identifies one version of a finding: a Duplicate re-raised with a higher count is a new one to emit. */
export const outboxToken = (d: Discrepancy): string => `${d.id}#${d.count}`;

/** Drops the findings now stored downstream (by outboxToken) from the outbox. */
export function settle(current: PendingEntry, emitted: ReadonlySet<string>): Transition {
  const outbox = current.outbox.filter((d) => !emitted.has(outboxToken(d)));
  return outbox.length === current.outbox.length ? { entry: current, changed: false } : { entry: { ...current, outbox }, changed: true };
}
