/**
 * How far out of order each source's events reach the realtime fold, in a realistic
 * run: sources each sending their events in occurredAt order, in bursts, half as core
 * `nats pub`-style publishes and half as HTTP POSTs spread over two gateway processes;
 * packs on EVENTS; two processors; one of them killed with SIGKILL mid-run and started
 * again, so its unacked messages are redelivered (after `nats.ackWait`) to either. The
 * processors log, per source, how far behind the highest occurredAt of its source seen
 * so far each event arrived (src/processors/realtime/disorder.ts); this script adds the
 * logs of every processor up and prints p50 / p99 / max of the positive ones per source.
 * `processor.outOfOrderness` is chosen from the max (README, realtime view).
 *
 *   npx tsx scripts/measure-disorder.ts --seconds 40 --rate 4000 --sources 12
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Command, Option } from 'commander';
import { mergeDisorder, disorderQuantile, type SourceDisorder } from '../src/processors/realtime/disorder.ts';
import { freePort } from '../src/nats/embedded-server.ts';
import { startTestNats } from '../test/harness/nats.ts';
import { exited, spawnTidemarkCaptured, terminate, type CapturedTidemark } from '../test/harness/processes.ts';
import { waitFor } from '../test/harness/streams.ts';

const opts = new Command('measure-disorder')
  .addOption(new Option('--seconds <n>', 'duration of the load').default(40).argParser(Number))
  .addOption(new Option('--rate <n>', 'events per second, all sources together').default(4_000).argParser(Number))
  .addOption(new Option('--sources <n>', 'sources (even ones over NATS, odd ones over HTTP)').default(12).argParser(Number))
  .addOption(new Option('--burst-ms <n>', 'each source sends what it has every this many ms, at once').default(250).argParser(Number))
  .addOption(new Option('--ack-wait <d>', 'nats.ackWait: when a killed processor\'s messages come again').default('30s'))
  .addOption(new Option('--no-kill', 'no processor kill'))
  .parse()
  .opts<{ seconds: number; rate: number; sources: number; burstMs: number; ackWait: string; kill: boolean }>();

const settings = {
  nats: { ackWait: opts.ackWait },
  reports: [{ name: 'rt', types: ['sale'], groupBy: ['source'], measures: { amount: { fn: 'sum', field: 'amount' } }, windows: [{ size: '1m', slide: '10s' }] }],
};

async function query(url: string, sql: string): Promise<string> {
  const res = await fetch(`${url}/?query=${encodeURIComponent(sql)}`);
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return (await res.text()).trim();
}

const nats = await startTestNats();
const dir = mkdtempSync(join(tmpdir(), 'tidemark-disorder-'));
const configFile = join(dir, 'tidemark.yaml');
writeFileSync(configFile, JSON.stringify(settings));
const chPort = await freePort();
const chUrl = `http://127.0.0.1:${chPort}`;
const env = { NATS_URL: nats.url, TIDEMARK_DATA_DIR: dir, TIDEMARK_CLICKHOUSE_HTTP_PORT: String(chPort), CLICKHOUSE_URL: chUrl, LOG_LEVEL: 'info' };
const clickhouse = spawnTidemarkCaptured(['clickhouse', '--config', configFile], { ...env, CLICKHOUSE_URL: '' });
const processes: CapturedTidemark[] = [clickhouse];
const logs: string[] = [];
const processor = () => {
  const p = spawnTidemarkCaptured(['processor', '--config', configFile], env);
  processes.push(p);
  return p;
};
try {
  await waitFor(async () => (await fetch(`${chUrl}/ping`)).ok, 60_000, 'the ClickHouse endpoint');
  const httpPorts = [await freePort(), await freePort()];
  for (const port of httpPorts) processes.push(spawnTidemarkCaptured(['gateway', '--config', configFile], { ...env, TIDEMARK_HTTP_PORT: String(port) }));
  await Promise.all(httpPorts.map((port) => waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok === true, 60_000, 'a gateway')));
  let processors = [processor(), processor()];
  await waitFor(async () => Number(await query(chUrl, "SELECT count() FROM tidemark.realtime_windows WHERE size_ms = 0 AND report = ''").catch(() => '0')) >= 2, 60_000, 'both processors');

  const nc = await connect({ servers: nats.url });
  const perBurst = Math.max(1, Math.round((opts.rate * opts.burstMs) / 1_000 / opts.sources));
  let published = 0;
  let httpFailures = 0;
  const started = Date.now();
  const source = async (s: number) => {
    const name = `d-${s}`;
    let n = 0;
    // a source's events, in occurredAt order; HTTP sources wait for each POST before the next (one client each)
    while (Date.now() - started < opts.seconds * 1_000) {
      const t0 = Date.now();
      const burst = Array.from({ length: perBurst }, (_, i) => ({ id: `${name}-${n + i}`, occurredAt: t0 - opts.burstMs + Math.floor(((i + 1) * opts.burstMs) / perBurst), data: { amount: '1.00' } }));
      n += perBurst;
      if (s % 2 === 0) {
        for (const e of burst) nc.publish(`ingest.${name}.sale`, JSON.stringify(e));
      } else {
        const port = httpPorts[Math.floor(n / perBurst) % 2]!;
        // a reset connection (keep-alive race) is sent again before the next burst: the order holds, a copy counts once
        for (let attempt = 1; ; attempt++) {
          try {
            const res = await fetch(`http://127.0.0.1:${port}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(burst.map((e) => ({ ...e, source: name, type: 'sale' }))) });
            if (res.status !== 202) httpFailures++;
            await res.arrayBuffer();
            break;
          } catch (err) {
            if (attempt === 5) throw err;
          }
        }
      }
      published += perBurst;
      await new Promise((r) => setTimeout(r, Math.max(0, opts.burstMs - (Date.now() - t0))));
    }
  };
  const kill = (async () => {
    if (!opts.kill) return;
    await new Promise((r) => setTimeout(r, (opts.seconds * 1_000) / 2));
    const victim = processors[0]!;
    logs.push(victim.stdout());
    victim.child.kill('SIGKILL');
    await exited(victim.child);
    process.stdout.write(`processor killed at ${((Date.now() - started) / 1_000).toFixed(1)} s\n`);
    await new Promise((r) => setTimeout(r, 2_000));
    processors = [processor(), processors[1]!];
  })();
  await Promise.all([...Array.from({ length: opts.sources }, (_, s) => source(s)), kill]);
  await nc.flush();
  await waitFor(async () => Number(await query(chUrl, "SELECT uniqExact(source, id) FROM tidemark.events WHERE startsWith(source, 'd-')")) >= published - httpFailures * perBurst, 180_000, 'every event stored');
  const jsm = await jetstreamManager(nc);
  const [events, consumer, ingest] = await Promise.all([jsm.streams.info('EVENTS'), jsm.consumers.info('EVENTS', 'processor'), jsm.consumers.info('INGEST', 'gateway')]);
  const stored = Number(await query(chUrl, "SELECT count() FROM tidemark.events WHERE startsWith(source, 'd-')"));
  process.stdout.write(`EVENTS: ${events.state.messages} messages; processor consumer redelivered ${consumer.num_redelivered}; gateway consumer redelivered ${ingest.num_redelivered}; rows in events ${stored} (before merges)\n`);
  const gatewayNotes = processes.map((p) => p.stdout()).join('').split('\n').filter((l) => /lease|take|took|redeliver/i.test(l)).slice(0, 5);
  if (gatewayNotes.length) process.stdout.write(`${gatewayNotes.join('\n')}\n`);
  const refused = await query(chUrl, "SELECT sum(late_refused) FROM tidemark.realtime_latest WHERE startsWith(group_key, '[\"d-')");
  // each processor logs its disorder every 10 s and when it stops
  for (const p of processors) {
    await terminate(p.child);
    logs.push(p.stdout());
  }
  const perSource = new Map<string, SourceDisorder>();
  let lines = 0;
  for (const text of logs) {
    for (const line of text.split('\n')) {
      if (!line.includes('realtime source disorder')) continue;
      lines++;
      for (const [name, d] of Object.entries((JSON.parse(line) as { disorder: Record<string, SourceDisorder> }).disorder)) {
        const had = perSource.get(name);
        perSource.set(name, had ? mergeDisorder(had, d) : d);
      }
    }
  }
  const redelivered = logs.join('').match(/redelivered/g)?.length ?? 0;
  process.stdout.write(`${published} events from ${opts.sources} sources in ${opts.seconds} s (bursts of ${perBurst} every ${opts.burstMs} ms per source), ${httpFailures} HTTP bursts not accepted; ${lines} disorder log lines${redelivered ? `, ${redelivered} log lines about redeliveries` : ''}\n`);
  process.stdout.write(`refused as late by the realtime view (late_refused, with processor.outOfOrderness at its default): ${refused}\n`);
  process.stdout.write('source  via   folded  behind  p50 ms  p99 ms  max ms\n');
  let all: SourceDisorder | undefined;
  for (const [name, d] of [...perSource].sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))) {
    all = all ? mergeDisorder(all, d) : d;
    const via = Number(name.slice(2)) % 2 === 0 ? 'nats' : 'http';
    process.stdout.write(`${name.padEnd(7)} ${via}  ${String(d.events).padStart(7)} ${String(d.behind).padStart(7)} ${String(disorderQuantile(d, 0.5)).padStart(7)} ${String(disorderQuantile(d, 0.99)).padStart(7)} ${String(d.max).padStart(7)}\n`);
  }
  if (all) process.stdout.write(`all     -     ${String(all.events).padStart(7)} ${String(all.behind).padStart(7)} ${String(disorderQuantile(all, 0.5)).padStart(7)} ${String(disorderQuantile(all, 0.99)).padStart(7)} ${String(all.max).padStart(7)}  (percentiles: power-of-two bucket bounds)\n`);
  await nc.close();
} finally {
  for (const p of processes.reverse()) if (p.child.exitCode === null) await terminate(p.child);
  await nats.dispose();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
