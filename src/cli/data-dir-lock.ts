import { existsSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ErrorCodes, TidemarkError } from '../core/errors.ts';
import { commandLine } from './ports.ts';

/**
 * What the process owning a data directory (`tidemark up`, or `init` on embedded servers)
 * writes into `<dataDir>/owner.json`: who it is, and where it serves what it owns, so other
 * commands on the same directory find its NATS and ClickHouse even on ports it had to move.
 */
export type DataDirOwner = {
  pid: number;
  command: string;
  startedAt: string;
  nats?: string;
  sql?: string;
  http?: string;
};

export type DataDirLock = { path: string; update: (urls: Pick<DataDirOwner, 'nats' | 'sql' | 'http'>) => void; release: () => void };

export const lockPath = (dataDir: string): string => join(resolve(dataDir), 'owner.json');

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: alive, but another user's
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // a recycled pid of an unrelated program does not hold the directory
  const cmd = commandLine(pid);
  return cmd === '' || /tidemark|node|tsx/.test(cmd);
}

function readOwnerFile(path: string): DataDirOwner | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as DataDirOwner;
    return typeof parsed.pid === 'number' ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** The live owner of the data directory, if any (a file left by a process that died is ignored). */
export function readDataDirOwner(dataDir: string): DataDirOwner | undefined {
  const owner = readOwnerFile(lockPath(dataDir));
  return owner && owner.pid !== process.pid && isAlive(owner.pid) ? owner : undefined;
}

export const describeOwner = (owner: DataDirOwner): string => `\`tidemark ${owner.command}\` (pid ${owner.pid}, started ${owner.startedAt})`;

function write(path: string, owner: DataDirOwner, flag: 'wx' | 'w'): void {
  if (flag === 'wx') {
    writeFileSync(path, JSON.stringify(owner), { flag });
    return;
  }
  // readers never see a half-written file
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(owner));
  renameSync(temp, path);
}

/** mkdir -p, one level at a time: Node's recursive mkdir spins forever on some refusals (measured: a path under /proc). */
function makeDirs(dir: string): void {
  if (existsSync(dir)) return;
  makeDirs(dirname(dir));
  mkdirSync(dir);
}

/** Creates the directory if need be and writes a file in it: the test that matters (permissions, a read-only mount, a file in the way). */
export function assertWritable(dir: string): void {
  try {
    makeDirs(dir);
    const probe = join(dir, `.write-test-${process.pid}`);
    writeFileSync(probe, '');
    unlinkSync(probe);
  } catch (err) {
    throw new TidemarkError(ErrorCodes.DATA_DIR_UNWRITABLE, `data directory ${dir} is not writable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): fix its permissions or set TIDEMARK_DATA_DIR to a writable directory`, { cause: err });
  }
}

/**
 * Claims the data directory for this process, or throws DATA_DIR_LOCKED naming the process
 * that holds it. chDB and the embedded nats-server store each allow one owner; claiming first
 * turns their later, cryptic failures into one line.
 */
export function acquireDataDir(dataDir: string, command: string): DataDirLock {
  const dir = resolve(dataDir);
  assertWritable(dir);
  const path = lockPath(dir);
  let owner: DataDirOwner = { pid: process.pid, command, startedAt: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      write(path, owner, 'wx');
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw err;
      const holder = readDataDirOwner(dir);
      if (holder) {
        throw new TidemarkError(
          ErrorCodes.DATA_DIR_LOCKED,
          `data directory ${dir} is in use by ${describeOwner(holder)}: stop that one, use it (its NATS ${holder.nats ?? 'is starting'}), or set TIDEMARK_DATA_DIR to another directory`,
        );
      }
      // left behind by a process that died
      unlinkSync(path);
    }
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    if (readOwnerFile(path)?.pid === process.pid) unlinkSync(path);
  };
  process.once('exit', release);
  return {
    path,
    update: (urls) => {
      owner = { ...owner, ...urls };
      write(path, owner, 'w');
    },
    release,
  };
}
