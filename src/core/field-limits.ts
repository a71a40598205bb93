/**
 * What the gateway enforces on user strings so that nothing built from them later can
 * break a limit downstream (SPEC §3, README "What is rejected, and the limits"):
 * - nats-server closes the connection on a subject (KV keys are subjects) over its
 *   max_control_line of 4096 bytes: `events.<source>.<type>` stays under 270 bytes and
 *   `dlq.<raw subject>` under 1030;
 * - nats.js throws building a header value with \r or \n: the event id becomes
 *   `Nats-Msg-Id`, so ids hold no control character and stay short;
 * - ClickHouse's JSON input refuses a lone UTF-16 surrogate escape, which JSON.stringify
 *   writes for one: no lone surrogate may reach a sink.
 * Lengths are UTF-8 bytes.
 */
export const FIELD_LIMITS = {
  id: 256,
  source: 128,
  type: 128,
  key: 512,
  dataKey: 256,
  subject: 1024,
} as const;

/** C0 controls, DEL and C1 controls (which include NEL, U+0085). */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export const hasControlCharacter = (text: string): boolean => CONTROL.test(text);

/** A high surrogate not followed by a low one, or a low one not preceded by a high one (code units: no `u` flag). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** A lone UTF-16 surrogate: JavaScript keeps it, UTF-8 and ClickHouse cannot. */
export const hasLoneSurrogate = (text: string): boolean => {
  LONE_SURROGATE.lastIndex = 0;
  return LONE_SURROGATE.test(text);
};

/** The string with each lone surrogate replaced by U+FFFD, as a UTF-8 encoder would: safe for any sink. */
export const wellFormed = (text: string): string => (hasLoneSurrogate(text) ? text.replace(LONE_SURROGATE, '\ufffd') : text);

/** UTF-8 length, computed only when the string could be over `limit` (a UTF-16 unit is at most 3 bytes). */
export const overBytes = (text: string, limit: number): number | undefined => {
  if (text.length * 3 <= limit) return undefined;
  const bytes = Buffer.byteLength(text);
  return bytes > limit ? bytes : undefined;
};

/** A printable, bounded preview of a user string for a reason: controls and lone surrogates escaped. */
export function preview(text: string, max = 64): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(cut.replace(LONE_SURROGATE, '\ufffd')).slice(1, -1);
}

/**
 * The deepest nesting of a parsed JSON value, counted without recursion (a body of
 * 100,000 nested arrays parses, but a recursive walk or JSON.stringify overflows the
 * stack on it); stops counting once over `limit`.
 */
export function nestingOver(value: unknown, limit: number): boolean {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (stack.length) {
    const top = stack.pop()!;
    if (typeof top.value !== 'object' || top.value === null) continue;
    if (top.depth >= limit) return true;
    const children = Array.isArray(top.value) ? top.value : Object.values(top.value);
    for (const child of children) if (typeof child === 'object' && child !== null) stack.push({ value: child, depth: top.depth + 1 });
  }
  return false;
}
