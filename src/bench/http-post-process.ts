/**
 * The bench's HTTP load generator as a process of its own: posts raw events `from` …
 * `from + count - 1` to `POST /v1/events` as NDJSON requests of `per-request` events,
 * from `clients` connections at once, each waiting for its answer before the next
 * request. A request whose connection failed or that got 503 is sent again, as a
 * client would (the ids make that safe); any other answer but 202 exits 1.
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

const ATTEMPTS = 5;

async function post(body: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body });
      const text = await res.text();
      if (res.status === 202) return;
      if (res.status !== 503 || attempt === ATTEMPTS) throw new Error(`POST /v1/events answered ${res.status}: ${text.slice(0, 300)}`);
    } catch (err) {
      if (attempt === ATTEMPTS || !(err instanceof TypeError)) throw err;
      process.stderr.write(`POST /v1/events failed (${String((err as { cause?: unknown }).cause ?? err)}); sending it again\n`);
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

async function client(): Promise<void> {
  while (next < end) {
    const first = next;
    next = Math.min(end, next + perRequest);
    const lines: string[] = [];
    for (let i = first; i < next; i++) lines.push(line(i));
    await post(lines.join('\n'));
  }
}

await Promise.all(Array.from({ length: clients }, client));
