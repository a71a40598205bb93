import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { exited } from '../harness/processes.ts';

// README, Sagas: "See examples/order-saga (npm run example:saga), which also shows the outbox
// pattern for service authors". The order service answers only through its outbox relay, so
// every saga that gets past the order step went through the outbox.
describe('npm run example:saga', () => {
  it('runs its orders to an end and prints how they ended, with a timeline', async () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(NATS_|CLICKHOUSE_|TIDEMARK_)/.test(name)));
    const child = spawn('npm', ['run', '--silent', 'example:saga', '--', '--sagas', '24', '--failure-rate', '0.15', '--latency', '5'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
    await exited(child);
    expect(child.exitCode, err).toBe(0);
    expect(out).toMatch(/^running 24 order sagas on nats:\/\/127\.0\.0\.1:\d+ \(embedded nats-server\)$/m);
    const summary = /^24 sagas in [\d.]+s\n {2}completed {4}(\d+).*\n {2}compensated {2}(\d+)(?:\n {4}\d+ × .*)*\n {2}parked {7}(\d+)/m.exec(out);
    expect(summary, out).not.toBeNull();
    const [completed, compensated, parked] = summary!.slice(1).map(Number) as [number, number, number];
    expect(completed + compensated + parked).toBe(24);
    // 0.85⁴ of the orders complete on average: none completing would take about 1 run in 10⁸
    expect(completed).toBeGreaterThan(0);
    // the order step's reply came through the outbox relay for every saga that went further
    expect(out).toMatch(/^for example:\nsaga {6}order\.\S+ \(order\)\nstatus {4}(completed|compensated)/m);
    expect(out).toMatch(/\+0ms\s+order\s+do\s+#1\s+(succeeded\s+OrderCreated|failed\s+OrderRejected)/);
  }, 120_000);
});
