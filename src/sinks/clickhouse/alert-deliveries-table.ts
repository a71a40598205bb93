import type { ClickHouseClient } from '@clickhouse/client';
import { BASE_SETTINGS } from '../../clickhouse/client.ts';

/** `delivered`: a 2xx; `refused`: a 4xx that repeating will not change; `undelivered`: still failing when `retryFor` ran out. */
export type DeliveryOutcome = 'delivered' | 'refused' | 'undelivered';

export type AlertDeliveryRow = {
  alert_id: string;
  /** the webhook's durable consumer name */
  webhook: string;
  /** redacted */
  url: string;
  outcome: DeliveryOutcome;
  rounds: number;
  status: number;
  reason: string;
  stored_at: number;
  at: number;
};

/**
 * No row refusal possible, so no isolation: ids come through alertRow (well-formed), the
 * webhook and URL from the config, the reason is made well-formed by the webhook sink, the
 * rest are numbers.
 */
export async function insertDeliveries(client: ClickHouseClient, db: string, rows: AlertDeliveryRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table: `${db}.alert_deliveries`, values: rows, format: 'JSONEachRow', clickhouse_settings: BASE_SETTINGS });
}
