import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import type { AlertMessage } from '../core/alert-kinds.ts';

/** An alert onto ALERTS, as `alertMessage` made it: its subject, its JSON, its id as the Nats-Msg-Id header. */
export const publishAlert = (js: JetStreamClient, message: AlertMessage): Promise<PubAck> => js.publish(message.subject, message.data, { msgID: message.msgId });
