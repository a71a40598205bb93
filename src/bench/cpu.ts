import { readFileSync } from 'node:fs';

/** Clock ticks a second of /proc/<pid>/stat's CPU times: 100 on every Linux the bench runs on (`getconf CLK_TCK`). */
const TICKS_PER_SECOND = 100;

/** User plus system CPU milliseconds a process has used so far, from /proc; undefined where there is none. */
export function cpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name may hold spaces and parentheses: fields are counted after its closing one
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), i.e. 12 and 13 after the name and state
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

export type CpuSample = Record<string, number | undefined>;

export const sampleCpu = (pids: Record<string, number | undefined>): CpuSample =>
  Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuMs(pid)]));

/** Microseconds of CPU per event, by process, between two samples. */
export function cpuPerEvent(before: CpuSample, after: CpuSample, events: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, end] of Object.entries(after)) {
    const start = before[name];
    if (end !== undefined && start !== undefined) out[name] = Math.round(((end - start) * 1000) / events * 10) / 10;
  }
  return out;
}
