/**
 * CPU time from Linux /proc, for the benches' "CPU per message" figures: the bench process
 * by thread, another process (a sink), and an embedded PostgreSQL (postmaster and its
 * children). Fields after the command name: state(0) ppid(1) … utime(11) stime(12), in
 * clock ticks of 10 ms (USER_HZ = 100 on every Linux ABI).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

function statFields(path: string): string[] | null {
  try {
    const stat = readFileSync(path, "latin1");
    // The command name may contain spaces; count fields after its ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null; // gone meanwhile
  }
}

const cpuOf = (f: string[]): number => (Number(f[11]) + Number(f[12])) * 10;

/** utime + stime of a process in ms (0 when it is gone). */
export function procCpuMs(pid: number): number {
  const f = statFields(`/proc/${pid}/stat`);
  return f ? cpuOf(f) : 0;
}

/** The postmaster's pid of a PostgreSQL data directory, or null. */
export function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * CPU of a PostgreSQL server in ms: the postmaster and the children alive now (a pool's
 * backends persist through a run, so differences over a run are its cost).
 */
export function postgresCpuMs(postmaster: number): number {
  let total = procCpuMs(postmaster);
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const f = statFields(`/proc/${pid}/stat`);
    if (f && Number(f[1]) === postmaster) total += cpuOf(f);
  }
  return total;
}

/** CPU of this process's threads in ms, by thread id (main, workers, V8 helpers, libuv). */
export function threadCpuMs(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync("/proc/self/task")) {
    const f = statFields(`/proc/self/task/${tid}/stat`);
    if (f) out.set(tid, cpuOf(f));
  }
  return out;
}

/** What each thread used between two `threadCpuMs()` readings: the main thread's, and the others' (largest first). */
export function threadCpuSince(
  before: Map<string, number>,
  after: Map<string, number> = threadCpuMs(),
): { main: number; others: number[] } {
  const main = String(process.pid);
  const used = (tid: string, ms: number) => ms - (before.get(tid) ?? 0);
  return {
    main: used(main, after.get(main) ?? 0),
    others: [...after]
      .filter(([tid]) => tid !== main)
      .map(([tid, ms]) => used(tid, ms))
      .sort((a, b) => b - a),
  };
}

/** The machine's CPU time by state, in ticks: the `cpu` line of /proc/stat. */
export function machineTicks(): { busy: number; idle: number; steal: number; total: number } {
  const f = readFileSync("/proc/stat", "latin1").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  return {
    busy: user + nice + system + irq + softirq,
    idle: idle + iowait,
    steal,
    total: user + nice + system + idle + iowait + irq + softirq + steal,
  };
}

/**
 * Shares (%) of the machine's CPU time between two `machineTicks()` readings that were
 * idle and stolen — steal is time the hypervisor gave this VM's vCPUs to someone else.
 * On a shared host the same code's CPU per message moves with it: a run with much steal
 * is not comparable with one without.
 */
export function machineShares(
  before: ReturnType<typeof machineTicks>,
  after = machineTicks(),
): { idlePct: number; stealPct: number } {
  const total = after.total - before.total || 1;
  return {
    idlePct: Math.round(((after.idle - before.idle) / total) * 1000) / 10,
    stealPct: Math.round(((after.steal - before.steal) / total) * 1000) / 10,
  };
}
