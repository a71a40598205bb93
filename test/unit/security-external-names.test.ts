import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkAst, checkCalls, externalNames } from '../../src/clickhouse/http-server/external-access.ts';

/** The pure half of "queries stay inside the database"; the engine half is in security-clickhouse. */
const external = externalNames(['file', 'url', 's3', 'numbers', 'generateRandom', 'remoteSecure', 'SQLStandardValues', 'input']);

describe('names that reach outside the database', () => {
  it('every table function but the local ones, plus engines and sources that are not table functions', () => {
    for (const name of ['file', 'url', 's3', 'remotesecure', 'disk', 'kafka', 'distributed', 'http']) expect(external.has(name)).toBe(true);
    for (const name of ['numbers', 'generaterandom', 'sqlstandardvalues', 'input', 'mergetree', 'memory']) expect(external.has(name)).toBe(false);
  });

  it('an AST naming one as a function, an engine or a dictionary source is refused, whatever its case', () => {
    expect(() => checkAst('TableExpression (children 1)\n      Function file (children 1)\n', external, 'u')).toThrow(/file\(\) reaches/);
    expect(() => checkAst(' Storage definition (children 1)\n  Function URL (children 1)\n', external, 'u')).toThrow(/URL\(\) reaches/);
    expect(() => checkAst('  FunctionWithKeyValueArguments  http (children 1)\n', external, 'u')).toThrow(/http\(\) reaches/);
    expect(() => checkAst('   Function numbers (children 1)\n  Function MergeTree\n  Identifier file\n  Literal \'file(x)\'\n', external, 'u')).not.toThrow();
  });

  it('calls in text are refused; a name inside a string, a comment, or not called is not', () => {
    expect(() => checkCalls("(1, file('/etc/passwd'))", external, 'u')).toThrow(/ACCESS_DENIED|Not enough privileges/);
    expect(() => checkCalls('(1, `FILE` (\'/etc/passwd\'))', external, 'u')).toThrow(/Not enough privileges/);
    expect(() => checkCalls("(1, 'file(/etc/passwd)') /* url('x') */ -- s3('y')\n, (2, file)", external, 'u')).not.toThrow();
  });

  it('any string literal is data, never a call (property)', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const literal = `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
        checkCalls(`(1, ${literal}), (2, ${literal})`, external, 'u');
      }),
      { numRuns: 500 },
    );
  });
});
