import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { ReconciliationConfig } from '../core/config.ts';
import { dlqRecord, publishToDlq } from '../nats/dlq.ts';
import { headerRecord, storedAtMs } from '../nats/js-msg.ts';
import type { PoisonPolicy } from '../nats/poison.ts';
import { STREAMS } from '../nats/topology.ts';
import { decodeEvents, encodeEvent } from '../core/envelope.ts';
import { eventIdentity } from '../core/identity.ts';
import { actOn, type ActionContext } from './actions.ts';
import { alertIfOver } from './alert.ts';
import { feedRecord } from './logic/feed-record.ts';
import { keyText } from './logic/keys.ts';
import { outboxToken, settle, type PendingEntry, type Transition } from './logic/pending.ts';
import type { ReconRecord, Side } from './logic/types.ts';
import type { StateStore } from './state-store.ts';

/** `poison`: how a feed message whose processing keeps failing on its own ends (in the DLQ, never retried for ever) */
export type StreamDeps = ActionContext & { store: StateStore; logger: Logger; poison: PoisonPolicy };

export type FeedMessage = { msg: JsMsg; ref: string; arrivedAt: number; record: ReconRecord };

const decoder = new TextDecoder();

/** A feed message's bodies with their refs: one per message, or one per event of an EVENTS pack (ref by event identity (source, id), so a copy of an event is the same record). */
function bodiesOf(msg: JsMsg): Array<{ ref: string; body: unknown; raw: Uint8Array } | { reason: string; raw: Uint8Array }> {
  const stream = msg.info.stream;
  if (stream === STREAMS.events.name) {
    try {
      return decodeEvents(msg.data).map((event) => ({ ref: `${stream}:id:${eventIdentity(event.source, event.id)}`, body: event, raw: encodeEvent(event) }));
    } catch (err) {
      return [{ reason: `not events: ${(err as Error).message}`, raw: msg.data }];
    }
  }
  try {
    return [{ ref: `${stream}:${msg.seq}`, body: JSON.parse(decoder.decode(msg.data)), raw: msg.data }];
  } catch (err) {
    return [{ reason: `not JSON: ${(err as Error).message}`, raw: msg.data }];
  }
}

/**
 * Feed messages as records; a message (or an event of a pack) that is not one (bad
 * JSON, no key) goes to the DLQ with its reason — never retried, never lost. A message
 * with no record left is acked here; the others once their records are applied.
 */
export async function decodeFeed(js: JetStreamClient, recon: ReconciliationConfig, side: Side, msgs: JsMsg[]): Promise<FeedMessage[]> {
  const out: FeedMessage[] = [];
  for (const msg of msgs) {
    const arrivedAt = storedAtMs(msg);
    const origin = { stream: msg.info.stream, seq: msg.seq };
    let kept = 0;
    for (const [index, body] of bodiesOf(msg).entries()) {
      const record = 'reason' in body ? body : feedRecord(recon, side === 'A' ? recon.a : recon.b, body.body, arrivedAt);
      if ('reason' in record) {
        const rejection = { code: 'INVALID_FIELD' as const, reason: `reconciliation ${recon.name} side ${side}: ${record.reason}` };
        await publishToDlq(js, dlqRecord(rejection, body.raw, msg.subject, headerRecord(msg), origin, arrivedAt), `RECON-${recon.name}-${msg.info.stream}-${msg.seq}-${index}`);
        continue;
      }
      out.push({ msg, ref: (body as { ref: string }).ref, arrivedAt, record });
      kept++;
    }
    if (kept === 0) msg.ack();
  }
  return out;
}

/**
 * Applies one transition per message to the KV state — messages of one key in order,
 * different keys concurrently — then emits every finding left in an outbox and clears
 * it. Callers ack only after this resolves, so a crash anywhere means redelivery:
 * the transitions are no-ops the second time (refs) and the outboxes are emitted again.
 */
export async function applyAndEmit(deps: StreamDeps, items: FeedMessage[], step: (item: FeedMessage, current: PendingEntry | null) => Transition): Promise<void> {
  const byKey = new Map<string, FeedMessage[]>();
  for (const item of items) {
    const text = keyText(item.record.key);
    byKey.set(text, [...(byKey.get(text) ?? []), item]);
  }
  const touched = await Promise.all(
    [...byKey.values()].map(async (group) => {
      let entry: PendingEntry | null = null;
      for (const item of group) entry = await deps.store.change(item.record.key, (current) => step(item, current));
      return entry;
    }),
  );
  await emitOutboxes(deps, touched.filter((e): e is PendingEntry => e !== null && e.outbox.length > 0));
}

async function emitOutboxes(deps: StreamDeps, entries: PendingEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const findings = new Map(entries.flatMap((e) => e.outbox).map((d) => [outboxToken(d), d]));
  await actOn(deps, [...findings.values()], { mode: 'stream', runId: `stream-${deps.recon.name}` });
  const tokens = new Set(findings.keys());
  await Promise.all(entries.map((e) => deps.store.change(e.key, (current) => (current === null ? { entry: e, changed: false } : settle(current, tokens)))));
  for (const period of new Set([...findings.values()].map((d) => d.period))) await alertIfOver(deps, period);
}
