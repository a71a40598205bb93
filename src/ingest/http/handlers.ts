import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Config } from '../../core/config.ts';
import type { EnvelopeLimits } from '../../core/envelope.ts';
import type { Logger } from '../../core/logger.ts';
import type { IngestMetrics } from '../../core/metrics.ts';
import { keptHeaders } from '../../nats/dlq.ts';
import { readBody, splitBody } from './body.ts';
import { prepareItem, rejectWholeBody, type PreparedItem } from './items.ts';
import { publishInvalid, publishValid } from './publish.ts';
import { sendJson } from './respond.ts';

export type IngestDeps = { config: Config; js: JetStreamClient; nc: NatsConnection; logger: Logger; metrics: IngestMetrics };

/** The NATS default; used only if the connection has not told us the server's own. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
/** A pack of items on INGEST stays well under the server's largest message, as EVENTS packs do. */
const PACK_BYTES = 512 * 1024;
/** Request headers as the DLQ keeps them (SPEC §3): the allow-list only, so never a credential. */
function headerRecord(req: IncomingMessage): Record<string, string[]> {
  const pairs: Array<[string, string[]]> = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) pairs.push([req.rawHeaders[i]!.toLowerCase(), [req.rawHeaders[i + 1]!]]);
  return keptHeaders(pairs);
}

/** Seconds a caller should wait after a 503 (NATS not storing): about a reconnect. */
const RETRY_AFTER_S = 2;

const byIndex = (a: { index: number }, b: { index: number }): number => a.index - b.index;

/**
 * `POST /v1/events`: validates each item, stores the valid ones in INGEST (the NATS
 * gateway takes them from there; many of one subject as packed messages) and the invalid ones in DLQ, and answers only once
 * every publish is acknowledged: 202 all accepted, 400 some rejected, 503 some not stored.
 */
export async function handleIngest(req: IncomingMessage, res: ServerResponse, deps: IngestDeps, url: URL): Promise<void> {
  const receivedAt = Date.now();
  const { http, ingest } = deps.config;
  const requestId = randomUUID();
  const body = await readBody(req, http.maxBodyBytes);
  if (!body.ok) {
    deps.metrics.rejected('http', 'TOO_LARGE');
    // closing is what stops the client from sending the rest of an oversized body
    sendJson(res, 413, { accepted: [], rejected: [{ index: 0, code: 'TOO_LARGE', reason: body.reason }] }, { connection: 'close', 'x-request-id': requestId });
    return;
  }

  const started = performance.now();
  const query = url.searchParams;
  const defaults = { source: query.get('source') ?? undefined, type: query.get('type') ?? undefined };
  const limits: EnvelopeLimits = { maxEventBytes: ingest.maxEventBytes, maxFutureSkew: ingest.maxFutureSkew, retention: ingest.retention };
  const split = splitBody(body.bytes, req.headers['content-type'], http.maxItems);
  if (!split.ok && split.rejection.code === 'TOO_MANY_ITEMS') {
    // refused before any per-item work: nothing is stored, so the caller still owns every item
    deps.metrics.rejected('http', 'TOO_MANY_ITEMS');
    sendJson(res, 413, { accepted: [], rejected: [{ index: 0, ...split.rejection }] }, { 'x-request-id': requestId });
    return;
  }
  const prepared: PreparedItem[] = split.ok
    ? split.items.map((item) => prepareItem(item, defaults, limits, receivedAt))
    : [rejectWholeBody(body.bytes, split.rejection, defaults)];
  const valid = prepared.filter((p) => p.ok);
  const invalid = prepared.filter((p) => !p.ok);

  const maxPayload = deps.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
  const packing = { packFrom: http.packFrom, maxBytes: Math.min(PACK_BYTES, Math.floor(maxPayload / 2)), maxItems: http.maxItems };
  const dlq = {
    js: deps.js,
    requestId,
    remoteAddress: req.socket.remoteAddress ?? 'unknown',
    headers: headerRecord(req),
    receivedAt,
    maxPayload,
  };
  const [published, dlqFailed] = await Promise.all([publishValid(deps.js, valid, packing), publishInvalid(dlq, invalid)]);
  deps.metrics.batch('http', (performance.now() - started) / 1_000);

  const duplicates = published.accepted.filter((a) => a.duplicate).length;
  deps.metrics.events('http', 'accepted', published.accepted.length - duplicates);
  deps.metrics.events('http', 'duplicate', duplicates);
  for (const item of invalid) deps.metrics.rejected('http', item.rejection.code);

  const rejected = invalid.map(({ index, rejection }) => ({ index, code: rejection.code, reason: rejection.reason }));
  const failed = [...published.failed, ...dlqFailed].sort(byIndex);
  const status = failed.length ? 503 : rejected.length ? 400 : 202;
  const log = { requestId, status, accepted: published.accepted.length, duplicates, rejected: rejected.length, failed: failed.length };
  if (failed.length) deps.logger.warn({ ...log, firstFailure: failed[0]?.reason }, 'ingest request not fully stored');
  else deps.logger.debug(log, 'ingest request');
  sendJson(
    res,
    status,
    { accepted: published.accepted, rejected, ...(failed.length ? { failed } : {}) },
    // 503 means NATS did not store something: the caller retries the whole request, and ids make the retry idempotent
    { 'x-request-id': requestId, ...(failed.length ? { 'retry-after': String(RETRY_AFTER_S) } : {}) },
  );
}
