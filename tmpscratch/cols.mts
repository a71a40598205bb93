import { mkdtempSync } from 'node:fs';
import { createChdbConnection } from 'chdb/connection';
const dir = mkdtempSync('/tmp/cols-');
const conn = createChdbConnection({ path: dir });
const q = (sql: string) => conn.chdb.queryAsync(sql, { format: 'CSV' });
const variant = process.argv[2]!;
const money = variant === 'd38' ? 'Decimal(38, 20)' : 'Decimal(76, 20)';
const extra = variant === 'msb' ? " SETTINGS merge_selector_base = 20" : '';
await q(`CREATE DATABASE t`);
await q(`CREATE TABLE t.events (id String, occurred_at DateTime64(3, 'UTC'), received_at DateTime64(3, 'UTC'), delay_ms Int64, source LowCardinality(String), type LowCardinality(String), key Nullable(String), data String, nums Map(LowCardinality(String), ${money}), seq UInt64, keep UInt64 MATERIALIZED 18446744073709551615 - seq) ENGINE = ReplacingMergeTree(keep) PARTITION BY toYYYYMM(occurred_at) ORDER BY (type, occurred_at, id)${extra}`);
const now = Date.now();
const enc = new TextEncoder();
const cols = ['id', 'occurred_at', 'received_at', 'delay_ms', 'source', 'type', 'key', 'data', 'nums', 'seq'];
const bodies: Uint8Array[] = [];
for (let b = 0; b < 100; b++) {
  const lines: string[] = [];
  for (let k = 0; k < 10_000; k++) { const i = b * 10_000 + k; const amount = `${i % 999}.${i % 100}`; const occ = now - ((i * 104_729) % 600_000);
    lines.push(JSON.stringify([`b-${i}`, occ, now, now - occ, `store-${i % 20}`, 'sale', null, `{"amount":"${amount}"}`, variant === 'nonums' ? {} : { amount }, i + 1])); }
  bodies.push(enc.encode(lines.join('\n')));
}
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
let c0 = cpu(); const t0 = performance.now();
for (const body of bodies) await conn.chdb.rawInsert({ table: 't.events', values: body, format: 'JSONCompactEachRow', columns: cols, settings: { async_insert: 0 } });
const ins = cpu() - c0;
for (;;) { const m = (await q(`SELECT count() FROM system.merges`)).text(); if (m.trim() === '0') break; await new Promise(r => setTimeout(r, 50)); }
console.log(variant, 'insert cpu', Math.round(ins), 'ms; with merges', Math.round(cpu() - c0), 'ms; wall', Math.round(performance.now() - t0), (await q(`SELECT count() FROM system.parts WHERE active AND table='events'`)).text().trim(), 'parts');
process.exit(0);
