/**
 * A raw message on INGEST may carry several events as NDJSON, with their count in this
 * header: the HTTP gateway stores a large request's items so, one PubAck a pack instead
 * of one an item. The NATS gateway reads each line as a raw event of its own.
 */
export const INGEST_PACK_HEADER = 'Tidemark-Items';

const NEWLINE = 0x0a;
const NEWLINE_BUFFER = Buffer.from([NEWLINE]);

/** Items as `JSON.stringify` wrote them (never a raw newline inside), one a line. */
export const packItems = (payloads: readonly Buffer[]): Buffer => {
  const parts: Buffer[] = [];
  payloads.forEach((payload, i) => {
    if (i > 0) parts.push(NEWLINE_BUFFER);
    parts.push(payload);
  });
  return Buffer.concat(parts);
};

/** The header's count: undefined when absent, NaN when not a count of at least one. */
export const packCount = (header: string | undefined): number | undefined =>
  !header ? undefined : /^[1-9]\d{0,5}$/.test(header) ? Number(header) : Number.NaN;

/** The lines of a pack, as views of its bytes; undefined when there are not exactly `count`. */
export function unpackItems(data: Uint8Array, count: number): Uint8Array[] | undefined {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let at = data.indexOf(NEWLINE); at !== -1; at = data.indexOf(NEWLINE, start)) {
    lines.push(data.subarray(start, at));
    start = at + 1;
    if (lines.length > count) return undefined;
  }
  lines.push(data.subarray(start));
  return lines.length === count ? lines : undefined;
}
