/** Every failure Tidemark raises on purpose carries a stable code that tests and callers match on. */
export const ErrorCodes = {
  CONFIG_INVALID: 'CONFIG_INVALID',
  CONFIG_NOT_FOUND: 'CONFIG_NOT_FOUND',
  NATS_SERVER_MISSING: 'NATS_SERVER_MISSING',
  NATS_SERVER_FAILED: 'NATS_SERVER_FAILED',
  NATS_SERVER_TOO_OLD: 'NATS_SERVER_TOO_OLD',
  NATS_UNREACHABLE: 'NATS_UNREACHABLE',
  NATS_AUTH_FAILED: 'NATS_AUTH_FAILED',
  JETSTREAM_DISABLED: 'JETSTREAM_DISABLED',
  PORT_IN_USE: 'PORT_IN_USE',
  DATA_DIR_LOCKED: 'DATA_DIR_LOCKED',
  DATA_DIR_UNWRITABLE: 'DATA_DIR_UNWRITABLE',
  STREAM_CONFLICT: 'STREAM_CONFLICT',
  CLICKHOUSE_UNAVAILABLE: 'CLICKHOUSE_UNAVAILABLE',
  REPORT_UNKNOWN: 'REPORT_UNKNOWN',
  WEBHOOK_FAILED: 'WEBHOOK_FAILED',
  MONITOR_STATE_CONFLICT: 'MONITOR_STATE_CONFLICT',
  MONITOR_STATE_STALE: 'MONITOR_STATE_STALE',
  SAGA_DEFINITION_INVALID: 'SAGA_DEFINITION_INVALID',
  SAGA_UNKNOWN: 'SAGA_UNKNOWN',
  SAGA_NOT_FOUND: 'SAGA_NOT_FOUND',
  SAGA_NOT_PARKED: 'SAGA_NOT_PARKED',
  SAGA_STATE_CONFLICT: 'SAGA_STATE_CONFLICT',
  SAGA_MESSAGE_INVALID: 'SAGA_MESSAGE_INVALID',
  RECON_UNKNOWN: 'RECON_UNKNOWN',
  RECON_MODE_UNSUPPORTED: 'RECON_MODE_UNSUPPORTED',
  RECON_FEED_UNBOUND: 'RECON_FEED_UNBOUND',
  RECON_CLAIM_BUSY: 'RECON_CLAIM_BUSY',
  RECON_DISCREPANCY_NOT_FOUND: 'RECON_DISCREPANCY_NOT_FOUND',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class TidemarkError extends Error {
  override readonly name = 'TidemarkError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const isTidemarkError = (err: unknown, code?: ErrorCode): err is TidemarkError =>
  err instanceof TidemarkError && (code === undefined || err.code === code);
