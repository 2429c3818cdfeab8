import type { LogLine, LogRing } from "./log_ring.ts";
import type { Logger } from "../system/logger.ts";

/**
 * Reads a workload process's stdout and stderr line by line into its log ring and the agent log
 * (`instance output`); resolves when both streams end.
 */
export async function captureOutput(
  child: Deno.ChildProcess,
  logs: LogRing,
  log: Logger,
): Promise<void> {
  const pump = async (stream: ReadableStream<Uint8Array>, name: LogLine["stream"]) => {
    let buffer = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      buffer += text;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        logs.push(name, line);
        log.info("instance output", { stream: name, line });
      }
    }
    if (buffer) logs.push(name, buffer);
  };
  await Promise.all([pump(child.stdout, "stdout"), pump(child.stderr, "stderr")]);
}

/** This many crashes within the window mark an instance failed (like Greengrass's BROKEN). */
const MAX_CRASHES = 3;
const CRASH_WINDOW_MS = 60_000;
const RESTART_BACKOFF_MS = [500, 1000, 2000];

/** What to do after a supervised process exited: restart after `restartInMs`, or give up. */
export type CrashVerdict = { restartInMs: number } | { giveUp: string };

/**
 * Records a crash at `now` in `history` (kept to the window, changed in place) and decides:
 * restart with backoff, or give up on the third crash within a minute (the reason names it).
 */
export function recordCrash(history: number[], code: number, now = Date.now()): CrashVerdict {
  const recent = history.filter((t) => now - t < CRASH_WINDOW_MS);
  history.splice(0, history.length, ...recent, now);
  if (history.length >= MAX_CRASHES) {
    return {
      giveUp: `crashed ${history.length} times within ${
        CRASH_WINDOW_MS / 1000
      } s (last exit code ${code})`,
    };
  }
  return {
    restartInMs: RESTART_BACKOFF_MS[Math.min(history.length - 1, RESTART_BACKOFF_MS.length - 1)]!,
  };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function terminate(child: Deno.ChildProcess, graceMs: number): Promise<void> {
  const send = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
  };
  send("SIGTERM");
  const killer = setTimeout(() => send("SIGKILL"), graceMs);
  try {
    await child.status;
  } finally {
    clearTimeout(killer);
  }
}

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
    await new Promise((r) => setTimeout(r, 50));
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
