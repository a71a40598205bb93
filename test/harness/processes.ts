import { spawn, type ChildProcess } from 'node:child_process';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { eventIdentity } from '../../src/core/identity.ts';
import { retryTransient } from '../../src/nats/retry.ts';
import { DAILY_BUCKET } from '../../src/processors/daily/revision-store.ts';
import { eventsOnStream, kvKeys, waitFor } from './streams.ts';

const children = new Set<ChildProcess>();
// a test that fails half-way must not leave its roles running after the test file's process ends
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Runs `tidemark <args>` as a separate process, the way a user or an operator starts a role. */
export function spawnTidemark(args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ['bin/tidemark.mjs', ...args], {
    env: { ...process.env, LOG_LEVEL: 'error', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export const exited = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

/** Sends SIGTERM and waits; the exit code tells whether the role shut down cleanly. */
export async function terminate(child: ChildProcess): Promise<number | null> {
  child.kill('SIGTERM');
  await exited(child);
  return child.exitCode;
}

/**
 * `terminate` within `ms`: a process that has not exited by then (stuck, or stopped by SIGSTOP)
 * is resumed and killed, and 'killed' returned, so a test's clean-up never waits for ever.
 */
export async function terminateWithin(child: ChildProcess, ms: number): Promise<number | null | 'killed'> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([exited(child).then(() => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  clearTimeout(timer);
  if (inTime) return child.exitCode;
  child.kill('SIGCONT');
  child.kill('SIGKILL');
  await exited(child);
  return 'killed';
}

/** Every event is stored and acked by the processors, and no day is left dirty: the daily view has caught up. */
export async function waitForDailyView(js: JetStreamClient, jsm: JetStreamManager, events: number, timeoutMs = 90_000): Promise<void> {
  await waitFor(async () => new Set((await eventsOnStream(js, jsm)).map((e) => eventIdentity(e.source, e.id))).size === events, timeoutMs, 'every event on EVENTS');
  await waitFor(async () => {
    const info = await jsm.consumers.info('EVENTS', 'processor');
    return info.num_pending === 0 && info.num_ack_pending === 0;
  }, timeoutMs, 'the processors to ack every event');
  // on a cluster the bucket's leader may be changing hands
  const kv = await retryTransient(() => new Kvm(js).open(DAILY_BUCKET));
  // as generous as the waits above: a revision after a crash, beside a saturating bench, took over 30 s once
  let left: string[] = [];
  try {
    await waitFor(async () => {
      left = await kvKeys(jsm, DAILY_BUCKET, 'dirty.>');
      return left.length === 0;
    }, timeoutMs, 'every dirty day to be revised');
  } catch (err) {
    const marks = await Promise.all(
      left.map(async (key) => {
        const entry = await kv.get(key);
        return entry?.operation === 'PUT' ? `${key} marked ${Math.round((Date.now() - Number(entry.string())) / 1000)} s ago` : `${key} (cleared since)`;
      }),
    );
    throw new Error(`${(err as Error).message}; still dirty: ${marks.join(', ')}`);
  }
}

export type CapturedTidemark = { child: ChildProcess; stdout: () => string; stderr: () => string };

/**
 * `tidemark <args>` with its output kept for assertions, on an environment that holds only what
 * the test gives (no NATS_URL or CLICKHOUSE_URL leaking in from the shell that runs the suite).
 */
export function spawnTidemarkCaptured(args: string[], env: Record<string, string>): CapturedTidemark {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(NATS_|CLICKHOUSE_|TIDEMARK_)/.test(name)));
  const child = spawn(process.execPath, ['bin/tidemark.mjs', ...args], {
    env: { ...base, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return { child, stdout: () => out, stderr: () => err };
}
