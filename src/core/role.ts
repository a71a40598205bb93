import type { Logger } from 'pino';

export type Readiness = { ready: boolean; reason?: string };

/**
 * What every role is once started (gateway, processor, monitor, saga, reconcile, and a
 * service author's own): a name for the logs, an optional readiness check and a stop
 * that drains what it holds. `stop` must be safe to call once the role failed.
 */
export type Role = {
  name: string;
  ready?: () => Promise<Readiness>;
  stop: () => Promise<void>;
};

/** A role not started yet: `up` lists several, a single-role command one. */
export type RoleStarter = { name: string; start: () => Promise<Omit<Role, 'name'> & Partial<Pick<Role, 'name'>>> };

export type RunningRoles = {
  roles: readonly Role[];
  /** ready when every role is (a role without a check counts as ready) */
  ready: () => Promise<Readiness>;
  /** stops the roles in reverse start order, each even if an earlier stop failed; rethrows the first failure */
  stop: () => Promise<void>;
};

/**
 * Starts roles in the order given, so a later one (the gateway: input) comes up only
 * once those downstream of it run; one that fails to start stops the ones before it.
 */
export async function startRoles(starters: readonly RoleStarter[], logger: Logger): Promise<RunningRoles> {
  const roles: Role[] = [];
  const stop = async () => {
    let failure: unknown;
    for (const role of [...roles].reverse()) {
      const began = performance.now();
      try {
        await role.stop();
        logger.info({ role: role.name, ms: Math.round(performance.now() - began) }, 'role stopped');
      } catch (err) {
        logger.error({ err, role: role.name }, 'role did not stop cleanly');
        failure ??= err;
      }
    }
    roles.length = 0;
    if (failure !== undefined) throw failure;
  };
  for (const starter of starters) {
    const began = performance.now();
    try {
      const started = await starter.start();
      roles.push({ ...started, name: starter.name });
    } catch (err) {
      await stop().catch(() => undefined);
      throw err;
    }
    logger.info({ role: starter.name, ms: Math.round(performance.now() - began) }, 'role started');
  }
  const running = [...roles];
  return {
    roles: running,
    ready: async () => {
      for (const role of running) {
        const answer = (await role.ready?.()) ?? { ready: true };
        if (!answer.ready) return { ready: false, reason: `${role.name}: ${answer.reason ?? 'not ready'}` };
      }
      return { ready: true };
    },
    stop,
  };
}
