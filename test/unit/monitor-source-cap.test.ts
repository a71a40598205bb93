import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/core/metrics.ts';
import { monitorMetricsFor } from '../../src/monitor/metrics.ts';
import { sourceCap } from '../../src/monitor/source-cap.ts';

describe('monitor source cap', () => {
  it('admits every source that has state, and new ones only while their SLA is under the limit', () => {
    const key = fc.tuple(fc.constantFrom('d', 'e'), fc.constantFrom('s1', 's2'), fc.integer({ min: 0, max: 15 })).map(([k, sla, n]) => `${k}.${sla}.src${n}`);
    fc.assert(
      fc.property(fc.uniqueArray(key, { maxLength: 10 }), fc.array(fc.array(key, { maxLength: 12 }), { maxLength: 4 }), fc.integer({ min: 1, max: 6 }), (existing, batches, max) => {
        // a synced view: it shows what each batch wrote before the next one asks
        const entries = new Map(existing.map((k) => [k, null]));
        // oracle: per prefix, the keys holding state, in the order they got it
        const holders = new Map<string, Set<string>>();
        for (const k of existing) {
          const prefix = k.split('.').slice(0, 2).join('.');
          if (!holders.has(prefix)) holders.set(prefix, new Set());
          holders.get(prefix)!.add(k);
        }
        for (const batch of batches) {
          const cap = sourceCap(entries, max);
          const written: string[] = [];
          let cutTotal = 0;
          for (const k of batch) {
            const prefix = k.split('.').slice(0, 2).join('.');
            const held = holders.get(prefix) ?? new Set<string>();
            holders.set(prefix, held);
            const expected = held.has(k) || held.size < max;
            if (expected) held.add(k);
            else cutTotal++;
            expect(cap.admits(k)).toBe(expected);
            if (expected) written.push(k);
          }
          for (const k of written) entries.set(k, null);
          expect([...cap.cut.values()].reduce((a, b) => a + b, 0)).toBe(cutTotal);
        }
      }),
      { seed: 7, numRuns: 500 },
    );
  });

  it('gives the busiest sources their own /metrics series and sums the rest under _other', async () => {
    const registry = createRegistry();
    const metrics = monitorMetricsFor(registry, 2);
    const stat = (source: string, events: number) => ({ source, events, late: 0, lateShare: 0, p50: 1, p95: 2, p99: 3, worstMs: 3 });
    metrics.windows([{ windowMs: 300_000, stats: [stat('a', 1), stat('b', 50), stat('c', 7), stat('d', 2)] }]);
    const events = (await registry.getSingleMetric('tidemark_delay_window_events')!.get()).values;
    expect(Object.fromEntries(events.map((v) => [v.labels.source, v.value]))).toEqual({ b: 50, c: 7, _other: 3 });
    expect((await registry.getSingleMetric('tidemark_delay_seconds')!.get()).values).toHaveLength(6);
    expect((await registry.getSingleMetric('tidemark_delay_sources_cut')!.get()).values[0]?.value).toBe(2);
  });
});
