import { eventRow } from '../src/sinks/clickhouse/events-table.ts';
const now = Date.now();
const COLUMNS = ['id', 'occurred_at', 'received_at', 'delay_ms', 'source', 'type', 'key', 'data', 'nums', 'seq'] as const;
const enc = new TextEncoder();
const B = 10_000; let bytes = 0;
const t0 = performance.now();
for (let b = 0; b < 150; b++) {
  const events = Array.from({ length: B }, (_, k) => { const i = b * B + k; return { id: `b-${i}`, type: 'sale', source: `store-${i % 20}`, key: null, occurredAt: now - ((i * 104_729) % 600_000), receivedAt: now, data: { amount: `${i % 999}.${i % 100}` }, seq: i + 1 }; });
  const lines = events.map((e) => { const row = eventRow(e as any); return JSON.stringify(COLUMNS.map((c) => (row as any)[c])); });
  bytes += enc.encode(lines.join('\n')).length;
}
console.log('js encode incl. event creation', ((performance.now() - t0) * 1000 / 1.5e6).toFixed(2), 'µs/row', bytes / 1.5e6, 'bytes/row');
