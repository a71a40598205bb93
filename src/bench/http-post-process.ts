/**
 * The bench's HTTP load generator as a process of its own: posts raw events `from` …
 * `from + count - 1` to `POST /v1/events` as NDJSON requests of `per-request` events,
 * from `clients` connections at once, each waiting for its answer before the next
 * request; exits 1 on any answer but 202.
 *
 *   node --import tsx src/bench/http-post-process.ts <gateway-url> <from> <count> <now-ms> <clients> <per-request>
 */
import { rawEvent } from './workload.ts';

const [url, from, count, now, clients, perRequest] = process.argv.slice(2).map((a, i) => (i === 0 ? a : Number(a))) as [string, number, number, number, number, number];
const end = from + count;
let next = from;

/** The workload's event with its subject's source and type in it, as an HTTP item must carry them. */
function line(i: number): string {
  const { subject, body } = rawEvent(i, now);
  const [, source, type] = subject.split('.');
  return `{"source":"${source}","type":"${type}",${body.slice(1)}`;
}

async function client(): Promise<void> {
  while (next < end) {
    const first = next;
    next = Math.min(end, next + perRequest);
    const lines: string[] = [];
    for (let i = first; i < next; i++) lines.push(line(i));
    const res = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: lines.join('\n') });
    const text = await res.text();
    if (res.status !== 202) throw new Error(`POST /v1/events answered ${res.status}: ${text.slice(0, 300)}`);
  }
}

await Promise.all(Array.from({ length: clients }, client));
