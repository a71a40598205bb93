import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { startRoles, type RoleStarter } from '../../src/core/role.ts';
import { instanceId } from '../../src/core/instance.ts';

const logger = pino({ level: 'silent' });

function recorder() {
  const log: string[] = [];
  const role = (name: string, options: { failStart?: boolean; failStop?: boolean; ready?: boolean } = {}): RoleStarter => ({
    name,
    start: async () => {
      if (options.failStart) throw new Error(`${name} cannot start`);
      log.push(`start ${name}`);
      return {
        ...(options.ready === undefined ? {} : { ready: async () => (options.ready ? { ready: true } : { ready: false, reason: 'warming up' }) }),
        stop: async () => {
          log.push(`stop ${name}`);
          if (options.failStop) throw new Error(`${name} stop failed`);
        },
      };
    },
  });
  return { log, role };
}

describe('startRoles', () => {
  it('starts in the order given and stops in reverse', async () => {
    const { log, role } = recorder();
    const roles = await startRoles([role('processor'), role('monitor'), role('gateway')], logger);
    expect(roles.roles.map((r) => r.name)).toEqual(['processor', 'monitor', 'gateway']);
    await roles.stop();
    expect(log).toEqual(['start processor', 'start monitor', 'start gateway', 'stop gateway', 'stop monitor', 'stop processor']);
  });

  it('stops the roles already started when a later one fails to start, and rethrows', async () => {
    const { log, role } = recorder();
    await expect(startRoles([role('processor'), role('monitor'), role('gateway', { failStart: true })], logger)).rejects.toThrow('gateway cannot start');
    expect(log).toEqual(['start processor', 'start monitor', 'stop monitor', 'stop processor']);
  });

  it('stops every role even when one stop fails, then rethrows that failure', async () => {
    const { log, role } = recorder();
    const roles = await startRoles([role('a'), role('b', { failStop: true }), role('c')], logger);
    await expect(roles.stop()).rejects.toThrow('b stop failed');
    expect(log.slice(3)).toEqual(['stop c', 'stop b', 'stop a']);
  });

  it('is ready when every role with a check is, naming the first that is not', async () => {
    const { role } = recorder();
    const ready = await startRoles([role('a'), role('b', { ready: true })], logger);
    expect(await ready.ready()).toEqual({ ready: true });
    const notReady = await startRoles([role('a', { ready: true }), role('b', { ready: false })], logger);
    expect(await notReady.ready()).toEqual({ ready: false, reason: 'b: warming up' });
  });
});

describe('instanceId', () => {
  it('names host, pid and a random part, with an optional role', () => {
    expect(instanceId()).toMatch(new RegExp(`^.+-${process.pid}-[0-9a-f]{6}$`));
    expect(instanceId('stream')).toMatch(new RegExp(`^stream@.+-${process.pid}-[0-9a-f]{6}$`));
    expect(instanceId()).not.toBe(instanceId());
  });
});
