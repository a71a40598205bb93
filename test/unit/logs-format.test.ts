import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { logFormat } from '../../src/core/logger.ts';

const run = promisify(execFile);
const SCRIPT = 'node --import tsx test/support/log-lines.ts';
// eslint-disable-next-line no-control-regex
const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, '');

describe('log format', () => {
  it('is pretty on a terminal and JSON otherwise, unless TIDEMARK_LOG_FORMAT says', () => {
    expect(logFormat({}, true)).toBe('pretty');
    expect(logFormat({}, false)).toBe('json');
    expect(logFormat({ TIDEMARK_LOG_FORMAT: 'json' }, true)).toBe('json');
    expect(logFormat({ TIDEMARK_LOG_FORMAT: 'Pretty' }, false)).toBe('pretty');
    expect(() => logFormat({ TIDEMARK_LOG_FORMAT: 'xml' }, true)).toThrow(/TIDEMARK_LOG_FORMAT "xml" is not json or pretty/);
  });

  it('prints readable lines under a pseudo-terminal (script -qc), secrets still redacted', async () => {
    const { stdout } = await run('script', ['-qec', SCRIPT, '/dev/null'], { env: { ...process.env, LOG_LEVEL: 'info', TIDEMARK_LOG_FORMAT: '' } });
    const lines = plain(stdout).split('\n').filter(Boolean);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: \[processor\] revision written .*"report":"revenue"/);
    expect(lines[0]).toContain('[redacted]');
    expect(lines[1]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: \[processor\] ClickHouse slow/);
    expect(stdout).not.toContain('hunter2');
    expect(stdout).not.toMatch(/^\{/m);
  }, 60_000);

  it('prints one JSON object per line into a pipe', async () => {
    const { stdout } = await run('node', ['--import', 'tsx', 'test/support/log-lines.ts'], { env: { ...process.env, LOG_LEVEL: 'info', TIDEMARK_LOG_FORMAT: '' } });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.level, l.role, l.msg])).toEqual([[30, 'processor', 'revision written'], [40, 'processor', 'ClickHouse slow']]);
    expect(lines[0]).toMatchObject({ report: 'revenue', password: '[redacted]' });
  }, 60_000);
});
