import { createChdbConnection } from 'chdb/connection';
import { createClient } from '@clickhouse/client';
import { mkdtempSync } from 'node:fs';
const dir = mkdtempSync('/tmp/chpar-');
const mk = () => createClient({ connection: createChdbConnection({ path: dir }) as any });
const a = mk(), b = mk();
const heavy = (c: any) => c.query({ query: 'SELECT sum(cityHash64(number)) FROM numbers(300000000)', format: 'JSONEachRow' }).then((r: any) => r.json());
const light = async (c: any, params = false) => { const t = performance.now(); await (await c.query({ query: params ? 'SELECT {x:UInt8}' : 'SELECT 1', format: 'JSONEachRow', ...(params ? { query_params: { x: 1 } } : {}) })).json(); return Math.round(performance.now() - t); };
let t = performance.now(); await heavy(a); console.log('heavy alone', Math.round(performance.now() - t));
for (const [name, c, p] of [['same conn', a, false], ['other conn', b, false], ['other conn, params', b, true]] as const) {
  const h = heavy(a); await new Promise(r => setTimeout(r, 50));
  console.log(name, 'light took', await light(c, p)); await h;
}
{ // heavy with params on a, light params on b
  const h = a.query({ query: 'SELECT sum(cityHash64(number)) FROM numbers({n:UInt64})', query_params: { n: 300000000 }, format: 'JSONEachRow' }).then((r: any) => r.json());
  await new Promise(r => setTimeout(r, 50));
  console.log('heavy params, light params other conn', await light(b, true)); await h;
}
process.exit(0);
