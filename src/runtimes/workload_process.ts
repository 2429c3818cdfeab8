import { sleep } from "../system/sleep.ts";
/**
 * Processes that are not this agent's children, seen with `ps`: the programs a killed agent left
 * running, found by their command line and stopped without an exit status to await.
 * @module
 */

/**
 * A process seen by `ps`, not necessarily our child (one a killed agent left running). Its start
 * time tells it apart from a later process that got the same pid.
 */
export interface ProcessSeen {
  pid: number;
  /** When it started (`ps -o lstart`, to the second). */
  started: string;
  /** Its command line, argv joined by spaces. */
  args: string;
}

// pid, state, the five words of lstart, the command line
const PS_LINE = /^\s*(\d+)\s+(\S+)\s+(\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s+(.*)$/;

/**
 * `ps -ww -o pid=,stat=,lstart=,args=` for every process, or only `pid`; zombies left out (they
 * run nothing). `ps`, not /proc: Deno reads /proc only with every permission granted.
 */
async function ps(pid?: number): Promise<ProcessSeen[]> {
  const out = await new Deno.Command("ps", {
    args: [
      "-ww",
      ...(pid === undefined ? ["-e"] : ["-p", String(pid)]),
      "-o",
      "pid=,stat=,lstart=,args=",
    ],
    env: { LC_ALL: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  // with -p, exit status 1 and no output: no such process
  if (!out.success && (pid === undefined || text.trim() !== "")) {
    throw new Error(`ps failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return text.split("\n").flatMap((line) => {
    const m = PS_LINE.exec(line);
    return m && !m[2]!.startsWith("Z") ? [{ pid: Number(m[1]), started: m[3]!, args: m[4]! }] : [];
  });
}

/**
 * Every live process whose command line runs a program `matches` recognises: `matches` gets the
 * command line from argv[0] on, then from argv[1] and argv[2] on (where the kernel puts a
 * script's path after its `#!` interpreter and one option), and returns what it found there.
 */
export async function findProcesses<T>(
  matches: (fromProgram: string) => T | undefined,
): Promise<(ProcessSeen & { found: T })[]> {
  return (await ps()).flatMap((seen) => {
    let rest = seen.args;
    for (let word = 0; word < 3; word++) {
      const found = matches(rest);
      if (found !== undefined) return [{ ...seen, found }];
      const space = rest.indexOf(" ");
      if (space < 0) break;
      rest = rest.slice(space + 1);
    }
    return [];
  });
}

/** Whether `seen` has exited: its pid is gone, a zombie, or now another process. */
async function gone(seen: ProcessSeen): Promise<boolean> {
  const [now] = await ps(seen.pid);
  return now?.started !== seen.started;
}

/** Polls until `seen` has exited or `ms` passed; says whether it exited. */
async function exitedWithin(seen: ProcessSeen, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await gone(seen)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
}

/** How {@link stopProcess} ended: gone before a signal, the signal it exited on, or neither. */
export type StopOutcome = "already gone" | "SIGTERM" | "SIGKILL" | "still running";

/**
 * Stops a process that is not our child (so there is no exit status to await): SIGTERM, polls
 * until it has exited, SIGKILL after `graceMs`, then waits `killMs` more at most.
 */
export async function stopProcess(
  seen: ProcessSeen,
  graceMs: number,
  killMs: number,
): Promise<StopOutcome> {
  if (await gone(seen)) return "already gone";
  for (const [signal, ms] of [["SIGTERM", graceMs], ["SIGKILL", killMs]] as const) {
    try {
      Deno.kill(seen.pid, signal);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (await exitedWithin(seen, ms)) return signal;
  }
  return "still running";
}
