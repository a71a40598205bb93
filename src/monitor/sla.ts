import { createHash } from 'node:crypto';
import type { DeadlineConfig, SlaConfig } from '../core/config.ts';
import { globMatcher, isGlob } from '../core/glob.ts';

/** An SLA ready for matching; `id` appears in alert ids and monitor state keys, so it must stay stable. */
export type Sla = {
  id: string;
  source: string;
  type: string;
  /** the one source this SLA names, when it is not a glob: expected even before it is ever seen */
  literalSource: string | null;
  matches: (source: string, type: string) => boolean;
  maxDelay: number | undefined;
  every: number | undefined;
  dailyBy: { hour: number; minute: number } | undefined;
  timeZone: string;
  deadlines: DeadlineConfig[];
};

/** A named SLA keeps its name; an unnamed one gets a hash of its globs, so reordering the config changes nothing. */
export const slaId = (sla: Pick<SlaConfig, 'name' | 'source' | 'type'>): string =>
  sla.name ?? `sla-${createHash('sha256').update(`${sla.source}\u0000${sla.type}`).digest('hex').slice(0, 10)}`;

export function compileSla(sla: SlaConfig): Sla {
  const source = globMatcher(sla.source);
  const type = globMatcher(sla.type);
  const [hour, minute] = sla.expect?.dailyBy?.split(':').map(Number) ?? [];
  return {
    id: slaId(sla),
    source: sla.source,
    type: sla.type,
    literalSource: isGlob(sla.source) ? null : sla.source,
    matches: (s, t) => source(s) && type(t),
    maxDelay: sla.maxDelay,
    every: sla.expect?.every,
    dailyBy: hour === undefined || minute === undefined ? undefined : { hour, minute },
    timeZone: sla.expect?.timeZone ?? 'UTC',
    deadlines: sla.deadlines,
  };
}

const MAX_CACHED_PAIRS = 10_000;

/** The SLAs an event falls under, cached per (source, type): the same few pairs repeat across millions of events. */
export function slaMatcher(slas: Sla[]): (source: string, type: string) => Sla[] {
  const cache = new Map<string, Sla[]>();
  return (source, type) => {
    const key = `${source}\u0000${type}`;
    let hit = cache.get(key);
    if (!hit) {
      if (cache.size >= MAX_CACHED_PAIRS) cache.clear();
      hit = slas.filter((sla) => sla.matches(source, type));
      cache.set(key, hit);
    }
    return hit;
  };
}
