/**
 * The pause an operator sees when one NATS server dies: a three-node cluster on
 * loopback (every stream and bucket with three replicas), a gateway and a processor
 * connected with the server list, ClickHouse served by `tidemark clickhouse`, and a
 * steady load of raw events. Then `kill -9` of the EVENTS leader, and the time until
 * the first event published after the kill is visible in ClickHouse; at the end,
 * every event published must be there exactly once. Measured, never asserted.
 *
 *   npx tsx scripts/bench-failover.ts --runs 3 --rate 2000
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Command, Option } from 'commander';
import { parseConfig } from '../src/core/config.ts';
import { createBatchPublisher } from '../src/nats/batch-publisher.ts';
import { serverList } from '../src/nats/connect.ts';
import { freePort } from '../src/nats/embedded-server.ts';
import { publishRetrying } from '../src/nats/retry.ts';
import { ensureTopology } from '../src/nats/topology.ts';
import { startTestCluster } from '../test/harness/cluster.ts';
import { exited, spawnTidemark, terminate } from '../test/harness/processes.ts';
import { waitFor } from '../test/harness/streams.ts';

const opts = new Command('bench-failover')
  .addOption(new Option('--runs <n>', 'kills, each on a fresh cluster').default(3).argParser(Number))
  .addOption(new Option('--rate <n>', 'raw events per second').default(2_000).argParser(Number))
  .addOption(new Option('--warmup <s>', 'seconds of load before the kill').default(5).argParser(Number))
  .parse()
  .opts<{ runs: number; rate: number; warmup: number }>();

const settings = { nats: { replicas: 3 } };
const TICK_MS = 50;

type Run = { pauseMs: number; published: number; stored: number; victim: string };

async function query(url: string, sql: string): Promise<string> {
  const res = await fetch(`${url}/?query=${encodeURIComponent(sql)}`);
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return (await res.text()).trim();
}

async function oneRun(): Promise<Run> {
  const cluster = await startTestCluster();
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-failover-'));
  const configFile = join(dir, 'tidemark.yaml');
  writeFileSync(configFile, JSON.stringify(settings));
  const chPort = await freePort();
  const chUrl = `http://127.0.0.1:${chPort}`;
  const env = { NATS_URL: cluster.url, TIDEMARK_DATA_DIR: dir, TIDEMARK_HTTP_PORT: '0', TIDEMARK_CLICKHOUSE_HTTP_PORT: String(chPort), CLICKHOUSE_URL: '' };
  const nc = await connect({ servers: serverList(cluster.url), maxReconnectAttempts: -1, reconnectTimeWait: 250, reconnectJitter: 250 });
  const jsm = await jetstreamManager(nc);
  await ensureTopology(jsm, parseConfig(settings));
  const clickhouse = spawnTidemark(['clickhouse', '--config', configFile], env);
  await waitFor(async () => (await fetch(`${chUrl}/ping`)).ok, 60_000, 'the ClickHouse endpoint');
  const roles = [spawnTidemark(['processor', '--config', configFile], env), spawnTidemark(['gateway', '--config', configFile], env)];
  const publisher = createBatchPublisher(nc);
  let next = 0;
  let stopped = false;
  const perTick = Math.max(1, Math.round((opts.rate * TICK_MS) / 1_000));
  // the load runs on its own; a batch refused during the election is retried by publishRetrying
  const load = (async () => {
    while (!stopped) {
      const started = performance.now();
      const items = Array.from({ length: perTick }, () => {
        const n = next++;
        return { subject: 'ingest.bench.sale', data: JSON.stringify({ id: `f-${n}`, occurredAt: Date.now(), data: { amount: '1.00' } }), msgId: `f-${n}` };
      });
      const outcomes = await publishRetrying(publisher, items, { budgetMs: 120_000 });
      if (outcomes.some((o) => !o.ok)) throw new Error(`publish failed: ${JSON.stringify(outcomes.find((o) => !o.ok))}`);
      await new Promise((r) => setTimeout(r, Math.max(0, TICK_MS - (performance.now() - started))));
    }
  })();
  const maxVisible = async () => Number(await query(chUrl, "SELECT max(toUInt64OrZero(substring(id, 3))) FROM tidemark.events WHERE startsWith(id, 'f-')"));
  try {
    // the roles migrate the schema first, which takes a while on a loaded machine: until then the table is unknown
    await waitFor(async () => (await maxVisible().catch(() => 0)) > 0, 180_000, 'the first events in ClickHouse');
    await new Promise((r) => setTimeout(r, opts.warmup * 1_000));
    const victim = await cluster.leaderOf(jsm, 'EVENTS');
    const firstAfter = next;
    const killedAt = performance.now();
    await victim.kill();
    await waitFor(async () => (await maxVisible().catch(() => 0)) >= firstAfter, 120_000, 'an event published after the kill');
    const pauseMs = performance.now() - killedAt;
    await new Promise((r) => setTimeout(r, 2_000));
    stopped = true;
    await load;
    const published = next;
    const stored = await waitFor(async () => {
      const n = Number(await query(chUrl, "SELECT uniqExact(id) FROM tidemark.events WHERE startsWith(id, 'f-')"));
      return n >= published && n;
    }, 120_000, 'every published event in ClickHouse').catch(async () => Number(await query(chUrl, "SELECT uniqExact(id) FROM tidemark.events WHERE startsWith(id, 'f-')")));
    if (stored < published) {
      // where the missing ones stopped: on INGEST, unforwarded, or on EVENTS, unstored
      const [ingest, gateway, processor] = await Promise.all([jsm.streams.info('INGEST'), jsm.consumers.info('INGEST', 'gateway'), jsm.consumers.info('EVENTS', 'processor')]);
      process.stderr.write(`INGEST ${ingest.state.messages} messages; gateway pending ${gateway.num_pending}, unacked ${gateway.num_ack_pending}, floor ${gateway.ack_floor.stream_seq}; processor pending ${processor.num_pending}, unacked ${processor.num_ack_pending}\n`);
    }
    await victim.start();
    return { pauseMs, published, stored, victim: victim.name };
  } finally {
    stopped = true;
    await load.catch(() => undefined);
    publisher.close();
    for (const role of roles) await terminate(role);
    clickhouse.kill('SIGTERM');
    await exited(clickhouse);
    await nc.close();
    await cluster.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

const runs: Run[] = [];
for (let i = 0; i < opts.runs; i++) {
  const run = await oneRun();
  runs.push(run);
  process.stdout.write(`run ${i + 1}: kill -9 of the EVENTS leader (${run.victim}) → next event in ClickHouse ${(run.pauseMs / 1_000).toFixed(2)} s; ${run.published} published, ${run.stored} in ClickHouse${run.stored === run.published ? '' : ' (MISSING EVENTS)'}\n`);
}
const pauses = runs.map((r) => r.pauseMs).sort((a, b) => a - b);
const s = (ms: number) => `${(ms / 1_000).toFixed(2)} s`;
process.stdout.write(`failover pause at ${opts.rate} events/s over ${runs.length} runs: min ${s(pauses[0]!)}, median ${s(pauses[Math.floor(pauses.length / 2)]!)}, max ${s(pauses.at(-1)!)}; events lost: ${runs.reduce((n, r) => n + Math.max(0, r.published - r.stored), 0)}\n`);
process.exit(0);
