import type { JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { decodeEvents, type TidemarkEvent } from '../../src/core/envelope.ts';

/** Polls until `check` returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const streamCount = async (jsm: JetStreamManager, stream: string): Promise<number> => (await jsm.streams.info(stream)).state.messages;

/** Every message currently in a stream, read with an ephemeral ordered consumer. */
export async function readAll(js: JetStreamClient, jsm: JetStreamManager, stream: string): Promise<JsMsg[]> {
  const total = await streamCount(jsm, stream);
  const out: JsMsg[] = [];
  if (total === 0) return out;
  const consumer = await js.consumers.get(stream);
  while (out.length < total) {
    // an empty fetch ends the read: on a loaded machine 2 s could pass before stored messages came, and a short read looked like "no alert"
    const batch = await consumer.fetch({ max_messages: Math.min(total - out.length, 1000), expires: 10_000 });
    let got = 0;
    for await (const msg of batch) {
      out.push(msg);
      got++;
    }
    if (got === 0) break;
  }
  return out;
}

export const json = <T = Record<string, unknown>>(msg: JsMsg): T => JSON.parse(new TextDecoder().decode(msg.data)) as T;

/** The events of EVENTS messages (each one event or a pack), in order, each with the message that carried it. */
export const unpack = (msgs: JsMsg[]): Array<{ msg: JsMsg; event: TidemarkEvent }> => msgs.flatMap((msg) => decodeEvents(msg.data).map((event) => ({ msg, event })));

/** Every event on EVENTS now. */
export const eventsOnStream = async (js: JetStreamClient, jsm: JetStreamManager): Promise<TidemarkEvent[]> => unpack(await readAll(js, jsm, 'EVENTS')).map((e) => e.event);

/**
 * The keys of a KV bucket matching `filter` whose latest entry is a value (not a delete or
 * purge), sorted: named by the bucket's stream info (one request), each key's last message then read. `kv.keys()`
 * runs an ordered consumer that, while the bucket is being written, also hands out keys written
 * during the listing: measured, one listing of a daily bucket a processor was revising took
 * 49 s and named 232 keys where one was dirty (as processors list their fence bucket, fence.ts).
 */
export async function kvKeys(jsm: JetStreamManager, bucket: string, filter = '>'): Promise<string[]> {
  const [stream, prefix] = [`KV_${bucket}`, `$KV.${bucket}.`];
  const info = await jsm.streams.info(stream, { subjects_filter: `${prefix}${filter}` });
  const keys: string[] = [];
  for (const subject of Object.keys(info.state.subjects ?? {})) {
    const last = await jsm.streams.getMessage(stream, { last_by_subj: subject });
    // a value carries no KV-Operation header; deletes and purges say DEL or PURGE
    if (last && !last.header?.get('KV-Operation')) keys.push(subject.slice(prefix.length));
  }
  return keys.sort();
}
