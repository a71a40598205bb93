import type { MonitorConfig } from '../core/config.ts';
import type { Sla } from './sla.ts';

/**
 * When a source's SLA state was last fed by one of its events (receivedAt). Sources
 * are the sender's choice, so a glob SLA's state for one that went quiet is forgotten
 * after `monitor.sourceIdleExpiry`, freeing its place under `maxSourcesPerSla`.
 */
export type Fed = { lastAt?: number; outbox: unknown[] };

/** The stamp is refreshed at most this often: one write per eighth of the expiry, not one per batch. */
const STAMPS_PER_EXPIRY = 8;

/**
 * `changed`: the state after the batch's marks (null: the marks changed nothing).
 * Returns what to write, with `lastAt` moved up to `at` when it changed or the stamp
 * is stale; null when neither.
 */
export function feed<T extends Fed>(state: T, changed: T | null, at: number, expiryMs: number): T | null {
  const stale = state.lastAt === undefined || at - state.lastAt >= expiryMs / STAMPS_PER_EXPIRY;
  if (changed === null && !stale) return null;
  return { ...(changed ?? state), lastAt: Math.max(at, state.lastAt ?? at) };
}

const DAY_MS = 86_400_000;

/**
 * The expiry of one SLA's sources: the configured one, but never so short that a
 * schedule forgets a source it still has to judge (two `every` intervals, a daily
 * deadline up to two days after its day, a DelayedEvent group until it resolves).
 */
export function idleExpiryOf(sla: Sla, monitor: Pick<MonitorConfig, 'sourceIdleExpiry' | 'resolveAfter' | 'groupInterval' | 'grace'>): number {
  const needs = [monitor.sourceIdleExpiry, monitor.resolveAfter + monitor.groupInterval + monitor.grace];
  if (sla.every !== undefined) needs.push(2 * sla.every + monitor.grace);
  if (sla.dailyBy !== undefined) needs.push(3 * DAY_MS);
  return Math.max(...needs);
}

/** Whether a glob source's state may be forgotten: nothing left to publish, and no event for `expiryMs` before the watermark. */
export function isIdle(value: Partial<Fed> | null, watermark: number, expiryMs: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (!Array.isArray(value.outbox) || value.outbox.length > 0) return false;
  return typeof value.lastAt === 'number' && value.lastAt < watermark - expiryMs;
}
