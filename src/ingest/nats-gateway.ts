import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from '../core/config.ts';
import { encodeEvent, eventSubject, parseRawEvent, type EnvelopeLimits, type ParseResult } from '../core/envelope.ts';
import { ingestMetrics } from '../core/metrics.ts';
import { headerRecord, runBatchConsumer, storedAtMs, type RunningConsumer } from '../nats/batch-consumer.ts';
import { createBatchPublisher, type BatchPublisher, type PublishItem } from '../nats/batch-publisher.ts';
import { CONSUMERS, STREAMS } from '../nats/topology.ts';
import { dlqItem, dlqRecord } from './dlq.ts';

export type GatewayStats = { accepted: number; rejected: number; duplicates: number };

export function envelopeLimits(config: Config): EnvelopeLimits {
  return { maxEventBytes: config.ingest.maxEventBytes, maxFutureSkew: config.ingest.maxFutureSkew, retention: config.ingest.retention };
}

function parseMsg(msg: JsMsg, limits: EnvelopeLimits): ParseResult {
  return parseRawEvent(msg.data, {
    subject: msg.subject,
    msgId: msg.headers?.get('Nats-Msg-Id') || undefined,
    stream: STREAMS.ingest.name,
    seq: msg.seq,
    receivedAt: storedAtMs(msg),
  }, limits);
}

function outputOf(msg: JsMsg, result: ParseResult): PublishItem {
  if (result.ok) return { subject: eventSubject(result.event), data: encodeEvent(result.event), msgId: result.event.id };
  const record = dlqRecord(result.rejection, msg.data, msg.subject, headerRecord(msg), { stream: STREAMS.ingest.name, seq: msg.seq }, storedAtMs(msg));
  return dlqItem(record, `${STREAMS.ingest.name}-${msg.seq}`);
}

/**
 * Validates one batch of raw messages and forwards each to EVENTS (`Nats-Msg-Id` =
 * event id) or to the DLQ. A raw message is acked only after JetStream acked its
 * output, so a crash at any point means redelivery, and the msg ids make the
 * redelivered copies collapse into the ones already stored.
 */
export function gatewayBatchHandler(publisher: BatchPublisher, limits: EnvelopeLimits, stats: GatewayStats, logger: Logger) {
  return async (msgs: JsMsg[]): Promise<void> => {
    const started = performance.now();
    const results = msgs.map((msg) => parseMsg(msg, limits));
    const outcomes = await publisher.publish(results.map((result, i) => outputOf(msgs[i]!, result)));
    let failures = 0;
    outcomes.forEach((outcome, i) => {
      const msg = msgs[i]!;
      const result = results[i]!;
      if (!outcome.ok) {
        failures++;
        msg.nak(1_000);
        return;
      }
      msg.ack();
      if (!result.ok) {
        stats.rejected++;
        ingestMetrics.rejected('nats', result.rejection.code);
      } else if (outcome.duplicate) {
        stats.duplicates++;
        ingestMetrics.events('nats', 'duplicate');
      } else {
        stats.accepted++;
        ingestMetrics.events('nats', 'accepted');
        ingestMetrics.delay(result.event.receivedAt - result.event.occurredAt);
      }
    });
    ingestMetrics.batch('nats', (performance.now() - started) / 1_000);
    if (failures) logger.warn({ failures, example: outcomes.find((o) => !o.ok) }, 'some outputs were not stored; their raw messages will be redelivered');
  };
}

export type NatsGateway = RunningConsumer & { stats: GatewayStats };

/** The ingest gateway over NATS: a durable pull consumer on INGEST shared by every gateway instance. */
export async function startNatsGateway(options: { js: JetStreamClient; nc: NatsConnection; config: Config; logger: Logger }): Promise<NatsGateway> {
  const stats: GatewayStats = { accepted: 0, rejected: 0, duplicates: 0 };
  const publisher = createBatchPublisher(options.nc);
  const running = await runBatchConsumer({
    js: options.js,
    stream: CONSUMERS.gateway.stream,
    durable: CONSUMERS.gateway.durable,
    batchSize: options.config.ingest.batchSize,
    handler: gatewayBatchHandler(publisher, envelopeLimits(options.config), stats, options.logger),
    logger: options.logger,
    // while one batch waits for its PubAcks, the next is validated and published
    concurrency: 3,
  });
  return {
    ...running,
    stats,
    stop: async () => {
      await running.stop();
      publisher.close();
    },
  };
}
