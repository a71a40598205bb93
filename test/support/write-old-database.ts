/**
 * Writes a database as the previous schema version leaves it, in its own process (chDB
 * holds one data directory per process), and prints its figures as JSON:
 *   node --import tsx test/support/write-old-database.ts <data dir>
 */
import { openClickHouse } from '../../src/clickhouse/client.ts';
import { migrate } from '../../src/clickhouse/migrations.ts';
import { dailyFigures } from '../../src/sinks/clickhouse/daily-figures.ts';
import { insertEvents } from '../../src/sinks/clickhouse/events-table.ts';
import { testConfig } from '../harness/config.ts';
import { BEFORE, days, oldEvents, report } from './old-events.ts';

const config = testConfig({ dataDir: process.argv[2] });
const db = config.clickhouse.database;
const client = openClickHouse(config);
try {
  await migrate(client, db, { until: BEFORE });
  const batches = oldEvents();
  for (const batch of batches) await insertEvents(client, db, batch);
  const figures = await Promise.all(days(batches).map(async (day) => [day, await dailyFigures(client, db, report, day)]));
  process.stdout.write(JSON.stringify(figures));
} finally {
  await client.close();
}
