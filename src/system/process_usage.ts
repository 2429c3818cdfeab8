/**
 * @module
 * CPU and memory of processes by pid, read with `ps` (Deno reads /proc only with every
 * permission granted): for the workloads the agent runs and for the agent itself.
 */

/** What one process has used. */
export interface ProcessUsage {
  /** CPU time so far, user + system, in seconds (`ps` gives whole seconds). */
  cpu_seconds: number;
  /** Resident memory now. */
  memory_bytes: number;
}

/** `[DD-]HH:MM:SS` (`ps -o time`) in seconds. */
function seconds(time: string): number {
  const [days, clock] = time.includes("-") ? time.split("-") : ["0", time];
  const [h, m, s] = clock!.split(":").map(Number);
  return Number(days) * 86_400 + h! * 3600 + m! * 60 + s!;
}

/**
 * The usage of each of `pids` that still runs (one `ps` for all); a pid that is gone is left
 * out. Resolves empty when `ps` cannot run.
 */
export async function processUsage(pids: number[]): Promise<Map<number, ProcessUsage>> {
  const usage = new Map<number, ProcessUsage>();
  if (pids.length === 0) return usage;
  const out = await new Deno.Command("ps", {
    args: ["-o", "pid=,rss=,time=", "-p", pids.join(",")],
    env: { LC_ALL: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => undefined);
  if (!out) return usage;
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s*$/.exec(line);
    if (m) {
      usage.set(Number(m[1]), { cpu_seconds: seconds(m[3]!), memory_bytes: Number(m[2]) * 1024 });
    }
  }
  return usage;
}

/** How many files the process has open, or undefined where /proc cannot be listed. */
export async function openFileCount(pid: number): Promise<number | undefined> {
  const out = await new Deno.Command("ls", {
    args: ["-1", `/proc/${pid}/fd`],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => undefined);
  if (!out?.success) return undefined;
  // ls's own listing handle is of its process, not this one
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l !== "").length;
}
