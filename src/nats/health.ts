import { JetStreamApiError, JetStreamError, type JetStreamManager } from '@nats-io/jetstream';
import {
  AuthorizationError,
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  PermissionViolationError,
  ProtocolError,
  RequestError,
  TimeoutError,
  UserAuthenticationExpiredError,
} from '@nats-io/transport-node';
import { isTransient } from './retry.ts';

/** Errors of reaching the server at all: the connection, its rights, nobody answering in time. */
const TRANSPORT = [ClosedConnectionError, ConnectionError, DrainingConnectionError, NoRespondersError, TimeoutError, RequestError, ProtocolError, AuthorizationError, PermissionViolationError, UserAuthenticationExpiredError];

/**
 * JetStream API refusals that say the server cannot take anything now, whatever is sent:
 * account resources exceeded, the consumer or stream missing (topology gone). Measured
 * codes of 2.9.10's errors.json; every 5xx is in the same family (insufficient
 * resources, storage, no cluster). A 4xx not listed (message too large, wrong last
 * sequence) is about the request itself.
 */
const SERVER_SIDE_CODES = new Set([10002, 10014, 10059]);

/**
 * Whether an error came from NATS itself (the connection, a timeout, a JetStream that
 * cannot take anything now) rather than from the message being handled. Such an error
 * says nothing about the message, so a quiet feed waits it out instead of filing the
 * message (nats/poison.ts). Follows `cause`: our own errors wrap the client's.
 */
export function isNatsError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (TRANSPORT.some((type) => err instanceof type) || isTransient(err)) return true;
  if (err instanceof JetStreamApiError) return err.status >= 500 || SERVER_SIDE_CODES.has(err.code);
  // status errors of pulls and heartbeats (409 consumer deleted, 503 no responders)
  if (err instanceof JetStreamError || err.name === 'JetStreamNotEnabled') return true;
  return err.cause !== undefined && isNatsError(err.cause);
}

/**
 * The quiet-feed probe of a role that writes only to NATS (poison.ts `healthy`): a
 * message's failure is its own when it is not an error of NATS itself and JetStream
 * answers for every stream the role writes to now (a stream info goes to the stream's
 * leader, so a stream without one does not answer). A probe that fails is an outage.
 */
export const natsAnswers = (jsm: JetStreamManager, streams: readonly string[]) => async (err: unknown): Promise<boolean> => {
  if (isNatsError(err)) return false;
  await Promise.all(streams.map((stream) => jsm.streams.info(stream)));
  return true;
};
