import { createHash } from 'node:crypto';

/**
 * Group keys come from event values (a source, a data field), so their length is the
 * sender's choice, and a KV key is a subject nats-server refuses past 4096 bytes.
 * Up to GROUP_TOKEN_CHARS of base64url a group is spelled out (`g…`, as always, so
 * existing keys keep working); a longer one is named by its SHA-256 (`h…`, 43 chars).
 * The daily view's KV keys and the ReportAmended alert id both name a group by it.
 */
const GROUP_TOKEN_CHARS = 172;

export function groupToken(groupKey: string): string {
  const spelled = Buffer.from(groupKey).toString('base64url');
  return spelled.length <= GROUP_TOKEN_CHARS ? `g${spelled}` : `h${createHash('sha256').update(groupKey).digest('base64url')}`;
}
