import type { ClickHouseClient } from '@clickhouse/client';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ReportConfig } from '../core/config.ts';
import { sleep } from '../core/time.ts';
import { businessDay, dayStartMs } from '../core/business-day.ts';
import { percentile } from './stats.ts';
import { probeDuring, type DuringScan } from './during-scan.ts';

const DAY_MS = 86_400_000;
const FILL_CHUNK = 2_000_000;
const SOURCE = 'big-store-';

export type BigDayResult = {
  day: string;
  dayEvents: number;
  groups: number;
  fillMs: number;
  /** seed event published → first revision of the day (its state computed from the whole day) */
  firstRevisionMs: number;
  /** realtime and small-day revision probes while the first revision read the big day */
  duringFirst: { realtime: DuringScan; revision: DuringScan };
  late: { samples: number; p50: number; p99: number; max: number };
};

/**
 * Fills one business day (two days back, so open and not today) with `events` sales over
 * `groups` stores straight into `events` with INSERT … SELECT from numbers(). Those rows
 * carry no arrival (stream epoch 0): written around the pipeline, they count as older
 * than any high-water mark, so the day's first revision — triggered by a seed sale
 * published through the pipeline — reads the whole day once and stores its state; the
 * processor and ClickHouse then agree on the day as they would after a replay.
 */
async function fill(clickhouse: ClickHouseClient, db: string, report: ReportConfig, day: string, events: number, groups: number): Promise<void> {
  const start = dayStartMs(day, report.timeZone);
  for (let offset = 0; offset < events; offset += FILL_CHUNK) {
    const count = Math.min(FILL_CHUNK, events - offset);
    // constant SQL (no parameters): chDB runs parameterised calls one at a time
    await clickhouse.command({
      query: `INSERT INTO ${db}.events (id, occurred_at, received_at, delay_ms, source, type, key, data, nums, seq)
        SELECT concat('big-', toString(number)), fromUnixTimestamp64Milli(toInt64(${start} + intDiv(number * ${DAY_MS - 1}, ${events})), 'UTC'),
          fromUnixTimestamp64Milli(toInt64(${start + DAY_MS}), 'UTC'), 0, concat('${SOURCE}', toString(number % ${groups})), '${report.types[0]}', NULL,
          concat('{"amount":"', toString(number % 1000), '.25"}'), map('amount', toDecimal256(toString(number % 1000) || '.25', 20)), 0
        FROM numbers(${offset}, ${count})`,
      clickhouse_settings: { max_partitions_per_insert_block: '0', optimize_on_insert: 0 },
    });
  }
}

/** The events count of each big-store group's latest revision, by one constant query. */
async function latestCounts(clickhouse: ClickHouseClient, db: string, reportName: string, day: string): Promise<Map<string, number>> {
  const rows = await (await clickhouse.query({
    query: `SELECT group_key, max(events) AS events FROM ${db}.report_revisions
      WHERE report = '${reportName.replace(/'/g, "''")}' AND day = '${day}' AND startsWith(group_key, '["${SOURCE}') GROUP BY group_key`,
    format: 'JSONEachRow',
  })).json<{ group_key: string; events: string }>();
  return new Map(rows.map((r) => [r.group_key, Number(r.events)]));
}

async function untilCount(clickhouse: ClickHouseClient, db: string, report: string, day: string, group: string, atLeast: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (((await latestCounts(clickhouse, db, report, day)).get(group) ?? 0) < atLeast) {
    if (performance.now() > deadline) throw new Error(`no revision of ${group} with ${atLeast} events within ${timeoutMs} ms`);
    await sleep(25);
  }
}

/**
 * "Late event → revision on a big day": fills a day with `events` events, lets the
 * processor take it in, then publishes `trials` late sales for it one after another,
 * each timed from publish to a revision of its store that includes it.
 */
export async function bigDayProbe(options: { nc: NatsConnection; clickhouse: ClickHouseClient; db: string; report: ReportConfig; events: number; groups: number; trials: number }): Promise<BigDayResult> {
  const { nc, clickhouse, db, report, events, groups } = options;
  const day = businessDay(Date.now() - 2 * DAY_MS, report.timeZone);
  const occurredAt = dayStartMs(day, report.timeZone) + DAY_MS / 2;
  const type = report.types[0]!;
  const filling = performance.now();
  await fill(clickhouse, db, report, day, events, groups);
  const fillMs = performance.now() - filling;
  const perGroup = (g: number) => Math.floor(events / groups) + (g < events % groups ? 1 : 0);

  const seeded = performance.now();
  nc.publish(`ingest.${SOURCE}0.${type}`, JSON.stringify({ id: 'big-seed', occurredAt, data: { amount: '1.00' } }));
  const first = untilCount(clickhouse, db, report.name, day, JSON.stringify([`${SOURCE}0`]), perGroup(0) + 1, 15 * 60_000).then(() => performance.now() - seeded);
  const during = await probeDuring({ nc, clickhouse, db, report: report.name, tag: 'bigday', type }, first);
  const firstRevisionMs = during.result;

  const added = new Map<number, number>([[0, 1]]);
  const samples: number[] = [];
  for (let i = 0; i < options.trials; i++) {
    const g = i % groups;
    added.set(g, (added.get(g) ?? 0) + 1);
    const sentAt = performance.now();
    nc.publish(`ingest.${SOURCE}${g}.${type}`, JSON.stringify({ id: `big-late-${i}`, occurredAt: occurredAt + i, data: { amount: '2.50' } }));
    await untilCount(clickhouse, db, report.name, day, JSON.stringify([`${SOURCE}${g}`]), perGroup(g) + added.get(g)!, 120_000);
    samples.push(performance.now() - sentAt);
  }
  return {
    day,
    dayEvents: events + [...added.values()].reduce((a, b) => a + b, 0),
    groups,
    fillMs,
    firstRevisionMs,
    duringFirst: { realtime: during.realtime, revision: during.revision },
    late: { samples: samples.length, p50: percentile(samples, 50), p99: percentile(samples, 99), max: Math.max(...samples) },
  };
}
