import { mkdtempSync } from 'node:fs';
import { openClickHouse } from '../src/clickhouse/client.ts';
import { migrate } from '../src/clickhouse/migrations.ts';
import { parseConfig } from '../src/core/config.ts';
import { insertEvents } from '../src/sinks/clickhouse/events-table.ts';
import { dailyFigures } from '../src/sinks/clickhouse/daily-figures.ts';
import { businessDay } from '../src/processors/logic/business-day.ts';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
const setting = process.argv[2] ?? '';
const dir = mkdtempSync('/tmp/scan-');
const config = parseConfig({ ...parse(readFileSync('config/tidemark.yaml', 'utf8')), dataDir: dir });
const ch = openClickHouse(config);
await migrate(ch, 'tidemark');
if (setting) await ch.command({ query: `ALTER TABLE tidemark.events MODIFY SETTING ${setting}` });
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const now = Date.now();
let c0 = cpu(), t0 = performance.now();
const N = 1_500_000, B = 10_000;
for (let b = 0; b < N / B; b++) {
  const events = Array.from({ length: B }, (_, k) => { const i = b * B + k; return { id: `b-${i}`, type: 'sale', source: `store-${i % 20}`, key: null, occurredAt: now - ((i * 104_729) % 600_000), receivedAt: now, data: { amount: `${i % 999}.${i % 100}` }, seq: i + 1 }; });
  await insertEvents(ch, 'tidemark', events);
}
console.log('insert', Math.round(performance.now() - t0), 'ms wall', Math.round(cpu() - c0), 'ms cpu');
const parts = async () => (await (await ch.query({ query: `SELECT count() AS n, sum(rows) AS r FROM system.parts WHERE database='tidemark' AND table='events' AND active`, format: 'JSONEachRow' })).json())[0];
console.log('parts right after', await parts());
c0 = cpu(); t0 = performance.now();
for (;;) { const m = await (await ch.query({ query: `SELECT count() AS n FROM system.merges`, format: 'JSONEachRow' })).json<{n:string}>(); if (m[0]!.n === '0') break; await new Promise(r => setTimeout(r, 100)); }
console.log('merges settle', Math.round(performance.now() - t0), 'ms', Math.round(cpu() - c0), 'ms cpu', await parts());
const report = config.reports[0]!;
const day = businessDay(now, report.timeZone);
for (let r = 0; r < 3; r++) { c0 = cpu(); t0 = performance.now(); const f = await dailyFigures(ch, 'tidemark', report, day); console.log('scan', Math.round(performance.now() - t0), 'ms', Math.round(cpu() - c0), 'ms cpu', f.length, 'groups', f.reduce((n, g) => n + g.events, 0)); }
await ch.close();
process.exit(0);
