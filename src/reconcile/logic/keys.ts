import { createHash } from 'node:crypto';
import type { DiscrepancyType, Side } from './types.ts';

/**
 * A key as one text: the JSON array of its parts. Parts are compared as text on both
 * systems (ClickHouse `toString`, JSON numbers in shortest form), so an id stored as
 * 7 on one side and "7" on the other still matches.
 */
export const keyText = (key: readonly string[]): string => JSON.stringify(key);

const digest = (parts: readonly string[]): string => createHash('sha256').update(parts.join('\u001f')).digest('hex').slice(0, 32);

/**
 * The id of a finding, from what it is about and nothing else: a batch re-run, a
 * restarted stream and the other mode all name one finding alike, which is what
 * keeps it from being stored, healed or alerted twice.
 */
export const discrepancyId = (name: string, period: string, type: DiscrepancyType, side: Side | null, key: readonly string[]): string =>
  `${type === 'Duplicate' ? `Duplicate${side}` : type}-${digest([name, period, type, side ?? '', keyText(key)])}`;

/** A NATS KV key for a match key: hex of a hash, because key parts may hold any character. */
export const stateKey = (key: readonly string[]): string => digest([keyText(key)]);
