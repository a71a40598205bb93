import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTidemarkError } from '../../src/core/errors.ts';
import { compileGroupKey, groupKey, matchesReport } from '../../src/processors/logic/group.ts';
import { makeEvent, makeReport } from '../support/fixtures.ts';

describe('group keys', () => {
  it('is "" without groupBy', () => {
    expect(groupKey(makeReport({}), makeEvent())).toBe('');
  });

  it('is the JSON array of the groupBy values, in groupBy order', () => {
    const report = makeReport({ groupBy: ['source', 'type', 'key', 'data.region'] });
    expect(groupKey(report, makeEvent({ source: 'store-17', key: 'acct-1', data: { region: 'TW' } }))).toBe('["store-17","sale","acct-1","TW"]');
    expect(groupKey(makeReport({ groupBy: ['data.region', 'source'] }), makeEvent({ source: 's', data: { region: 1 } }))).toBe('[1,"s"]');
  });

  it('treats a missing data field and a null key as null', () => {
    const report = makeReport({ groupBy: ['key', 'data.region', 'data.constructor'] });
    expect(groupKey(report, makeEvent({ data: {} }))).toBe('[null,null,null]');
    expect(groupKey(report, makeEvent({ data: { region: null } }))).toBe('[null,null,null]');
  });

  it('writes object values with sorted keys', () => {
    const report = makeReport({ groupBy: ['data.tag'] });
    expect(groupKey(report, makeEvent({ data: { tag: { b: 1, a: [2, { d: 3, c: 4 }] } } }))).toBe('[{"a":[2,{"c":4,"d":3}],"b":1}]');
  });

  it('is unambiguous: different value tuples never share a key', () => {
    const report = makeReport({ groupBy: ['source', 'data.x'] });
    const value = fc.oneof(fc.string({ maxLength: 4 }), fc.constantFrom<unknown>('|', '","', '\\', 'null', null, 0, 1, '1', true, 'true'));
    fc.assert(
      fc.property(fc.string({ maxLength: 4 }), value, fc.string({ maxLength: 4 }), value, (s1, x1, s2, x2) => {
        const k1 = groupKey(report, makeEvent({ source: s1, data: { x: x1 } }));
        const k2 = groupKey(report, makeEvent({ source: s2, data: { x: x2 } }));
        expect(k1 === k2).toBe(s1 === s2 && x1 === x2);
        expect(JSON.parse(k1)).toEqual([s1, x1]);
      }),
      { seed: 17, numRuns: 500 },
    );
  });

  it('rejects a groupBy field it cannot read, naming it', () => {
    for (const field of ['occurredAt', 'data.', 'amount']) {
      let error: unknown;
      try {
        compileGroupKey(makeReport({ groupBy: [field] }));
      } catch (err) {
        error = err;
      }
      expect(isTidemarkError(error, 'CONFIG_INVALID')).toBe(true);
      expect((error as Error).message).toContain(`"${field}"`);
    }
  });
});

describe('matchesReport', () => {
  it('matches by event type', () => {
    const report = makeReport({ types: ['sale', 'adjustment'] });
    expect(matchesReport(report, makeEvent({ type: 'sale' }))).toBe(true);
    expect(matchesReport(report, makeEvent({ type: 'adjustment' }))).toBe(true);
    expect(matchesReport(report, makeEvent({ type: 'refund' }))).toBe(false);
  });
});
