import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { insertIsolating } from '../../src/sinks/clickhouse/isolating-insert.ts';
import { isRowRefusal, isSinkError } from '../../src/sinks/clickhouse/refusal.ts';

describe('ClickHouse failures: the rows or the moment', () => {
  it('tells a refused row from a transient failure by code and type, whatever the error class', () => {
    // @clickhouse/client's ClickHouseError over HTTP, and chDB's insert error (its text starts with the engine code)
    expect(isRowRefusal({ code: '469', type: 'VIOLATED_CONSTRAINT', message: 'Constraint violated' })).toBe(true);
    expect(isRowRefusal({ code: 'CHDB_INSERT', message: 'Code: 25. DB::Exception: Cannot parse escape sequence' })).toBe(true);
    expect(isRowRefusal({ type: 'CANNOT_PARSE_INPUT_ASSERTION_FAILED' })).toBe(true);
    expect(isRowRefusal({ code: '252', type: 'TOO_MANY_PARTS', message: 'Too many parts' })).toBe(false);
    expect(isRowRefusal({ code: 'CHDB_INSERT', message: 'Code: 241. DB::Exception: Memory limit exceeded' })).toBe(false);
    expect(isRowRefusal(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' }))).toBe(false);
    expect(isRowRefusal(new Error('Timeout error.'))).toBe(false);
    expect(isRowRefusal(undefined)).toBe(false);
  });

  it('stores every accepted row once it has split the batch down to the refused ones', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.boolean(), { maxLength: 200 }), async (bad) => {
        const rows = bad.map((refused, i) => ({ i, refused }));
        const stored: number[] = [];
        let inserts = 0;
        const insert = async (batch: typeof rows): Promise<void> => {
          inserts++;
          // like ClickHouse: one refused row fails the whole insert, and nothing of it is stored
          if (batch.some((r) => r.refused)) throw Object.assign(new Error('Code: 469. DB::Exception: Constraint'), { code: 'CHDB_INSERT' });
          stored.push(...batch.map((r) => r.i));
        };
        const refused = await insertIsolating(rows, insert);
        expect(refused.map((r) => r.row.i)).toEqual(rows.filter((r) => r.refused).map((r) => r.i));
        expect(stored.sort((a, b) => a - b)).toEqual(rows.filter((r) => !r.refused).map((r) => r.i));
        const badCount = refused.length;
        if (badCount === 1) expect(inserts).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(rows.length)) + 1);
      }),
      { seed: 6, numRuns: 300 },
    );
  });

  it('lets a transient failure through for the caller to retry', async () => {
    const tooManyParts = Object.assign(new Error('Too many parts'), { code: '252', type: 'TOO_MANY_PARTS' });
    await expect(insertIsolating([1, 2], () => Promise.reject(tooManyParts))).rejects.toBe(tooManyParts);
  });
});

describe('an error of ClickHouse itself, or of the message', () => {
  it('takes engine errors, socket errors and timeouts for the sink, anything else for the message', () => {
    const engine = Object.assign(new Error('Code: 252. DB::Exception: Too many parts'), { code: '252', type: 'TOO_MANY_PARTS' });
    expect(isSinkError(engine)).toBe(true);
    expect(isSinkError(new Error('Code: 241. DB::Exception: Memory limit exceeded'))).toBe(true);
    expect(isSinkError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isSinkError(Object.assign(new Error('Timeout error.'), { name: 'TimeoutError' }))).toBe(true);
    expect(isSinkError(new TypeError("Cannot read properties of undefined (reading 'source')"))).toBe(false);
    expect(isSinkError(new SyntaxError('Unexpected token } in JSON at position 3'))).toBe(false);
    expect(isSinkError('a string')).toBe(false);
  });
});
