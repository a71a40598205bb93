import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * A name for one running instance, in logs, checkpoints, claims and audit trails:
 * host and pid say where to look, the random part keeps a restart that reuses a pid
 * (a container's pid 1) apart from its predecessor. `role@` says what it is, where
 * one store holds entries of several kinds of actor.
 */
export const instanceId = (role?: string): string => `${role ? `${role}@` : ''}${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
