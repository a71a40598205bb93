import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/core/config.ts';
import { isTidemarkError } from '../../src/core/errors.ts';
import { differingSegments, firstLevel, nextStep, pages, type SegmentStat } from '../../src/reconcile/logic/bisection.ts';
import { correctionFor } from '../../src/reconcile/logic/correction.ts';
import { diffKey } from '../../src/reconcile/logic/discrepancy.ts';
import { feedRecord } from '../../src/reconcile/logic/feed-record.ts';
import { columnType, fieldHash } from '../../src/reconcile/logic/hash-plan.ts';
import { discrepancyId } from '../../src/reconcile/logic/keys.ts';
import { arrive, expire, settle, outboxToken, type PendingEntry } from '../../src/reconcile/logic/pending.ts';
import type { FieldSpec, ReconRecord, ReconSpec } from '../../src/reconcile/logic/types.ts';
import { valuesAgree } from '../../src/reconcile/logic/values.ts';
import { batchWindow, ownerPeriod } from '../../src/reconcile/logic/window.ts';

const abs = (tolerance: string): FieldSpec => ({ compare: 'absolute', tolerance });
const pct = (tolerance: string): FieldSpec => ({ compare: 'percentage', tolerance });
const exact: FieldSpec = { compare: 'exact' };

const spec: ReconSpec = { name: 'pay', key: ['merchant', 'txn'], fields: { amount: abs('0.01'), status: exact }, lag: 60_000, timeZone: 'Asia/Taipei' };
const T = Date.parse('2026-03-01T12:00:00+08:00');
const rec = (txn: string, amount: string | null, status = 'paid', time = T): ReconRecord => ({ key: ['m1', txn], fields: { amount, status }, time });

describe('field comparison (exact decimals)', () => {
  it('holds absolute tolerance edges exactly', () => {
    expect(valuesAgree(abs('0.01'), '10.00', '10.01')).toBe(true);
    expect(valuesAgree(abs('0.01'), '10.00', '9.99')).toBe(true);
    expect(valuesAgree(abs('0.01'), '10.00', '10.010000000000000000001')).toBe(false);
    expect(valuesAgree(abs('0.01'), '0.1', '0.11')).toBe(true); // 0.1 + 0.01 is not 0.11 in binary floating point
    expect(valuesAgree(abs('0'), '1.50', '1.5')).toBe(true);
    expect(valuesAgree(abs('0'), '1.50', '1.51')).toBe(false);
  });

  it('measures percentage against A, so it is not symmetric', () => {
    expect(valuesAgree(pct('1'), '100', '101')).toBe(true);
    expect(valuesAgree(pct('1'), '100', '101.0000000001')).toBe(false);
    expect(valuesAgree(pct('1'), '101', '100')).toBe(true); // 1 <= 1.01
    expect(valuesAgree(pct('1'), '99', '100')).toBe(false); // 1 > 0.99
    expect(valuesAgree(pct('50'), '0', '0')).toBe(true);
    expect(valuesAgree(pct('50'), '0', '0.000001')).toBe(false);
    expect(valuesAgree(pct('1'), '-100', '-99')).toBe(true);
  });

  it('compares exact fields by value when both are decimals, else by text; null only equals null', () => {
    expect(valuesAgree(exact, '2', '2.000')).toBe(true);
    expect(valuesAgree(exact, 'paid', 'Paid')).toBe(false);
    expect(valuesAgree(abs('1'), 'n/a', 'n/a')).toBe(true);
    expect(valuesAgree(abs('1'), 'n/a', '1')).toBe(false);
    expect(valuesAgree(exact, null, null)).toBe(true);
    expect(valuesAgree(abs('1'), null, '0')).toBe(false);
  });

  it('agrees with integer arithmetic on scaled values (property, seeded)', () => {
    const cents = fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n });
    const text = (c: bigint) => `${c < 0n ? '-' : ''}${(c < 0n ? -c : c) / 100n}.${String((c < 0n ? -c : c) % 100n).padStart(2, '0')}`;
    fc.assert(
      fc.property(cents, cents, fc.bigInt({ min: 0n, max: 10n ** 6n }), fc.integer({ min: 0, max: 5_000 }), (a, b, tol, pctBasis) => {
        const gap = a > b ? a - b : b - a;
        expect(valuesAgree(abs(text(tol)), text(a), text(b))).toBe(gap <= tol);
        // percentage in hundredths of a percent: gap * 100 * 100 <= basis * |a|
        const p = `${pctBasis / 100}`;
        const absA = a < 0n ? -a : a;
        expect(valuesAgree(pct(p), text(a), text(b))).toBe(gap * 10_000n <= BigInt(pctBasis) * absA);
      }),
      { seed: 7, numRuns: 2_000 },
    );
  });
});

describe('batch rules per key', () => {
  it('finds every kind, and no mismatch when any pair agrees', () => {
    const find = (as: ReconRecord[], bs: ReconRecord[]) => diffKey(spec, '2026-03-01', ['m1', '1'], as, bs).map((d) => `${d.type}${d.side ?? ''}${d.count > 1 ? `x${d.count}` : ''}`);
    expect(find([rec('1', '5')], [rec('1', '5.005')])).toEqual([]);
    expect(find([rec('1', '5')], [])).toEqual(['MissingInB']);
    expect(find([], [rec('1', '5')])).toEqual(['MissingInA']);
    expect(find([rec('1', '5')], [rec('1', '5.02')])).toEqual(['Mismatch']);
    expect(find([rec('1', '5'), rec('1', '7')], [rec('1', '7')])).toEqual(['DuplicateAx2']);
    expect(find([rec('1', '5'), rec('1', '7')], [rec('1', '9'), rec('1', '9'), rec('1', '9')])).toEqual(['DuplicateAx2', 'DuplicateBx3', 'Mismatch']);
  });

  it('names a finding by what it is about, so every mode and run agree on its id', () => {
    const [d] = diffKey(spec, '2026-03-01', ['m1', '1'], [rec('1', '5')], []);
    expect(d!.id).toBe(discrepancyId('pay', '2026-03-01', 'MissingInB', null, ['m1', '1']));
    expect(d!.id).toMatch(/^MissingInB-[0-9a-f]{32}$/);
    expect(discrepancyId('pay', '2026-03-01', 'MissingInB', null, ['m1', '1'])).not.toBe(discrepancyId('pay', '2026-03-02', 'MissingInB', null, ['m1', '1']));
  });

  it('gives a key to the day of its A record, so widened windows never report it twice', () => {
    const w = batchWindow('2026-03-01', 'Asia/Taipei', 60_000);
    expect(w.from).toBe(Date.parse('2026-03-01T00:00:00+08:00') - 60_000);
    const lateNight = Date.parse('2026-03-01T23:59:30+08:00');
    const nextMorning = Date.parse('2026-03-02T00:00:20+08:00');
    const a = [rec('9', '1', 'paid', lateNight)];
    const b = [rec('9', '1', 'paid', nextMorning)];
    expect(ownerPeriod(a, b, 'Asia/Taipei')).toBe('2026-03-01');
    expect(ownerPeriod([], b, 'Asia/Taipei')).toBe('2026-03-02');
    expect(ownerPeriod([], [], 'Asia/Taipei')).toBeUndefined();
  });
});

describe('streaming state per key', () => {
  const step = (entry: PendingEntry | null, side: 'A' | 'B', ref: string, r: ReconRecord, at = T) => arrive(spec, entry, side, ref, r, at).entry;

  it('is expected until the other side comes, then matched', () => {
    const e1 = step(null, 'A', 's:1', rec('1', '5'));
    expect(e1).toMatchObject({ state: 'expected', deadline: T + 60_000, outbox: [] });
    const e2 = step(e1, 'B', 'r:1', rec('1', '5.01'));
    expect(e2).toMatchObject({ state: 'matched', deadline: null, outbox: [] });
    expect(expire(spec, e2, 'A', 's:1').changed).toBe(false);
  });

  it('ignores a redelivery, raises a duplicate for another copy, a mismatch once both differ', () => {
    const e1 = step(null, 'A', 's:1', rec('1', '5'));
    expect(arrive(spec, e1, 'A', 's:1', rec('1', '5'), T).changed).toBe(false);
    const e2 = step(e1, 'A', 's:2', rec('1', '5'));
    expect(e2.outbox.map((d) => [d.type, d.side, d.count])).toEqual([['Duplicate', 'A', 2]]);
    const e3 = step(e2, 'A', 's:3', rec('1', '5'));
    expect(e3.outbox.map((d) => [d.type, d.side, d.count])).toEqual([['Duplicate', 'A', 3]]);
    const e4 = step(e3, 'B', 'r:1', rec('1', '6'));
    expect(e4.state).toBe('mismatched');
    expect(e4.outbox.at(-1)).toMatchObject({ type: 'Mismatch', diffs: [{ field: 'amount', a: '5', b: '6' }] });
    const settled = settle(e4, new Set(e4.outbox.map(outboxToken))).entry;
    expect(settled.outbox).toEqual([]);
  });

  it('turns an expired one-sided key into Missing once, and a late partner does not undo it', () => {
    const e1 = step(null, 'B', 'r:1', rec('1', '5'));
    const missing = expire(spec, e1, 'B', 'r:1');
    expect(missing.entry.state).toBe('missing');
    expect(missing.entry.outbox.map((d) => d.type)).toEqual(['MissingInA']);
    expect(expire(spec, missing.entry, 'B', 'r:1').changed).toBe(false);
    const late = step(settle(missing.entry, new Set(missing.entry.outbox.map(outboxToken))).entry, 'A', 's:1', rec('1', '5'));
    expect(late).toMatchObject({ state: 'late', outbox: [] });
  });
});

describe('bisection planning', () => {
  const stat = (segment: number, rows: number, sum = 's', dupKeys = 0): SegmentStat => ({ segment, rows, sum, xor: 'x', dupKeys });
  const options = { segments: 4_096, fanout: 16, fetchRows: 100, pageRows: 60 };

  it('flags differing checksums, one-sided segments and duplicated keys', () => {
    const a = [stat(1, 10), stat(2, 10), stat(3, 10, 's', 1), stat(5, 10)];
    const b = [stat(1, 10), stat(2, 10, 'other'), stat(3, 10), stat(4, 7)];
    expect(differingSegments(a, b)).toEqual([{ segment: 2, rows: 10 }, { segment: 3, rows: 10 }, { segment: 4, rows: 7 }, { segment: 5, rows: 10 }]);
  });

  it('fetches when few rows differ, descends when many do, stops when none', () => {
    const level = firstLevel(options);
    expect(level).toEqual({ bits: 12, segments: 'all' });
    expect(nextStep(level, 4_096, [], options)).toEqual({ kind: 'done' });
    expect(nextStep(level, 4_096, [{ segment: 7, rows: 50 }, { segment: 9, rows: 40 }], options)).toEqual({ kind: 'fetch', bits: 12, pages: [[7], [9]], rows: 90 });
    expect(nextStep(level, 4_096, [{ segment: 7, rows: 500 }, { segment: 9, rows: 400 }], options)).toEqual({ kind: 'descend', level: { bits: 16, segments: [7, 9] } });
    // most segments differ: a finer level would not fetch fewer rows
    expect(nextStep(level, 3, [{ segment: 1, rows: 500 }, { segment: 2, rows: 400 }], options).kind).toBe('fetch');
    expect(nextStep({ bits: 46, segments: [1] }, 100, [{ segment: 1, rows: 500 }], options).kind).toBe('fetch');
  });

  it('pages segments by rows', () => {
    expect(pages([{ segment: 1, rows: 30 }, { segment: 2, rows: 30 }, { segment: 3, rows: 100 }, { segment: 4, rows: 1 }], 60)).toEqual([[1, 2], [3], [4]]);
  });
});

describe('hash plan', () => {
  it('hashes same types natively, aligns decimal scales, buckets tolerant fields', () => {
    expect(columnType('Nullable(LowCardinality(String))')).toEqual({ base: 'String', nullable: true });
    const d2 = columnType('Decimal(18, 2)');
    const d4 = columnType('Decimal(38, 4)');
    const s = columnType('String');
    expect(fieldHash('x', exact, d2, d2)).toEqual({ field: 'x', kind: 'native' });
    expect(fieldHash('x', exact, d2, d4)).toEqual({ field: 'x', kind: 'decimal', scale: 4 });
    expect(fieldHash('x', exact, columnType('UInt64'), d2)).toEqual({ field: 'x', kind: 'decimal', scale: 2 });
    expect(fieldHash('x', exact, d2, s)).toEqual({ field: 'x', kind: 'text' });
    expect(fieldHash('x', abs('0.00'), d2, d2)).toEqual({ field: 'x', kind: 'native' });
    expect(fieldHash('x', abs('0.01'), d2, s)).toMatchObject({ kind: 'absolute', width: 0.005 });
    expect(fieldHash('x', pct('1'), d2, d2)).toMatchObject({ kind: 'percentage', width: Math.log1p(0.01) / 2 });
    expect(fieldHash('x', pct('0.0000000001'), d2, d2)).toEqual({ field: 'x', kind: 'native' });
  });
});

describe('feed records and corrections', () => {
  const side = { subject: 'recon.pay.a', fields: { amount: 'data.amount', merchant: 'data.m' }, time: 'at' };

  it('reads key parts and fields at their paths, as text', () => {
    expect(feedRecord(spec, side, { txn: 7, data: { m: 'm1', amount: 12.5 }, at: '2026-03-01T12:00:00+08:00' }, 1)).toEqual({ key: ['m1', '7'], fields: { amount: '12.5', status: null }, time: T });
    expect(feedRecord(spec, side, { txn: 7, data: { m: 'm1' } }, 42)).toMatchObject({ time: 42 });
    expect(feedRecord(spec, side, { txn: 7, data: {} }, 1)).toEqual({ reason: 'key field merchant (at data.m) is missing' });
    expect(feedRecord(spec, side, [], 1)).toEqual({ reason: 'a feed record must be a JSON object' });
  });

  it('builds a correction that makes B agree with A, with an id derived from the finding', () => {
    const recon = { name: 'pay', key: ['merchant', 'txn'], correction: { source: 'recon', type: 'adjustment', fields: ['amount'] } };
    const [mismatch] = diffKey(spec, '2026-03-01', ['m1', '1'], [rec('1', '10.10')], [rec('1', '10.00')]);
    const fix = correctionFor(recon, mismatch!);
    expect(fix).toEqual({
      subject: 'ingest.recon.adjustment',
      event: { id: `recon-pay-${mismatch!.id}`, source: 'recon', type: 'adjustment', key: '["m1","1"]', occurredAt: T, data: { amount: '0.1', reconciliation: 'pay', discrepancy: mismatch!.id, kind: 'Mismatch' } },
    });
    const [missingInA] = diffKey(spec, '2026-03-01', ['m1', '1'], [], [rec('1', '3')]);
    expect(correctionFor({ ...recon, correction: { ...recon.correction, sourceField: 'merchant' } }, missingInA!)).toMatchObject({ subject: 'ingest.m1.adjustment', event: { data: { amount: '-3' } } });
    const [statusOnly] = diffKey(spec, '2026-03-01', ['m1', '1'], [rec('1', '1', 'paid')], [rec('1', '1', 'void')]);
    expect(correctionFor(recon, statusOnly!)).toEqual({ reason: 'no correction field differs' });
  });
});

describe('config', () => {
  const base = { name: 'pay', a: { table: 'bank' }, b: { table: 'ledger' }, key: ['txn'], fields: { amount: { compare: 'absolute', tolerance: '0.01' } } };

  it('fills defaults and keeps tolerances as exact text', () => {
    const [recon] = parseConfig({ reconciliations: [{ ...base, lag: '15m' }] }).reconciliations;
    expect(recon).toMatchObject({ lag: 900_000, timeZone: 'UTC', heal: { MissingInA: 'manual', Mismatch: 'manual' }, alert: { threshold: 0 }, batch: { segments: 4_096 } });
    expect(recon!.fields.amount).toEqual({ compare: 'absolute', tolerance: '0.01' });
  });

  it('names the bad key', () => {
    const bad = (recon: Record<string, unknown>) => {
      try {
        parseConfig({ reconciliations: [recon] });
        return 'accepted';
      } catch (err) {
        expect(isTidemarkError(err, 'CONFIG_INVALID')).toBe(true);
        return (err as Error).message;
      }
    };
    expect(bad({ ...base, fields: { amount: { compare: 'absolute', tolerance: '-1' } } })).toContain('reconciliations[0].fields.amount.tolerance');
    expect(bad({ ...base, a: { subject: 'recon.x' } })).toContain('both be subject feeds');
    expect(bad({ ...base, heal: { Mismatch: 'publish' } })).toContain('reconciliations[0].correction: required');
    expect(bad({ ...base, a: { table: 'bank', fields: { txn: 'bad name' } } })).toContain('is not a column name');
  });
});
