import { decodeEvents, packEvents } from '../src/core/envelope.ts';
const mk = (i: number) => JSON.stringify({ id: `b-${i}`, type: 'sale', source: `store-${i % 20}`, key: null, occurredAt: 1795316105833 - i, receivedAt: 1795316105999, data: { amount: `${i % 999}.${i % 100}` }, seq: 1000000 + i });
console.log(mk(1), mk(1).length);
for (const size of [1, 10, 200]) {
  const packs = Array.from({ length: 2000 }, (_, p) => packEvents(Array.from({ length: size }, (_, k) => mk(p * size + k))));
  let n = 0; const t = performance.now();
  for (let r = 0; r < 5; r++) for (const p of packs) n += decodeEvents(p).length;
  const ms = performance.now() - t; console.log(`pack ${size}: ${(ms * 1000 / n).toFixed(2)} µs/event`);
}
