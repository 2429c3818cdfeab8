import { sleep } from "../system/sleep.ts";
import { atomicWriteFile } from "../system/atomic_write.ts";
import { readBoundedJsonFile } from "../protocol/bounded_json.ts";
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
  /** Its parent's pid: a script's subshells run the same command line as the script. */
  ppid: number;
  /** When it started (`ps -o lstart`, to the second). */
  started: string;
  /** Its command line, argv joined by spaces. */
  args: string;
}

// pid, ppid, state, the five words of lstart, the command line
const PS_LINE = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s+(.*)$/;

/**
 * `ps -ww -o pid=,ppid=,stat=,lstart=,args=` for every process, or only `pids`; zombies left out
 * (they run nothing). `ps`, not /proc: Deno reads /proc only with every permission granted.
 */
async function ps(pids?: number[]): Promise<ProcessSeen[]> {
  const out = await new Deno.Command("ps", {
    args: [
      "-ww",
      ...(pids === undefined ? ["-e"] : ["-p", pids.join(",")]),
      "-o",
      "pid=,ppid=,stat=,lstart=,args=",
    ],
    env: { LC_ALL: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  // with -p, exit status 1 and no output: no such process
  if (!out.success && (pids === undefined || text.trim() !== "")) {
    throw new Error(`ps failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return text.split("\n").flatMap((line) => {
    const m = PS_LINE.exec(line);
    return m && !m[3]!.startsWith("Z")
      ? [{ pid: Number(m[1]), ppid: Number(m[2]), started: m[4]!, args: m[5]! }]
      : [];
  });
}

/** What a pid record says: which process ran a program, and what it was found for. */
export interface RecordedProcess<T> {
  started: string;
  found: T;
}

/**
 * Every live process that runs a program `matches` recognises, or that a pid record names (by
 * pid and start time, in `recorded`; those come first): `matches` gets the command line from
 * argv[0] on, then from argv[1] and argv[2] on (where the kernel puts a script's path after its
 * `#!` interpreter and one option), and returns what it found there. One `ps` for all of them.
 */
export async function findProcesses<T>(
  matches: (fromProgram: string) => T | undefined,
  recorded: ReadonlyMap<number, RecordedProcess<T>> = new Map(),
): Promise<(ProcessSeen & { found: T })[]> {
  const found = (await ps()).flatMap((seen) => {
    const record = recorded.get(seen.pid);
    if (record?.started === seen.started) return [{ ...seen, found: record.found }];
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
  return found.sort((a, b) => Number(recorded.has(b.pid)) - Number(recorded.has(a.pid)));
}

/** The live process `pid` is, if any (not a zombie). */
export async function processWithPid(pid: number): Promise<ProcessSeen | undefined> {
  return (await ps([pid]))[0];
}

/** The most a pid record may hold: a pid, a start time, a command line. */
const MAX_RECORD_BYTES = 64 * 1024;

/**
 * Writes which process `pid` is (its start time and command line) to `path`, atomically: a later
 * agent reads it back with {@link recallProcess} to find the program again even after it exec'd
 * another binary (same pid, another argv). Only the agent writes it, in a directory the workload
 * cannot: a pid the workload could name would let it have any process stopped.
 * @returns false when `pid` is already gone (nothing written)
 */
export async function rememberProcess(path: string, pid: number): Promise<boolean> {
  const seen = await processWithPid(pid);
  if (!seen) return false;
  await atomicWriteFile(path, JSON.stringify(seen), { mode: 0o600 });
  return true;
}

/** The pid and start time a {@link rememberProcess} record holds; undefined when it holds none. */
export async function readProcessRecord(
  path: string,
): Promise<Pick<ProcessSeen, "pid" | "started"> | undefined> {
  const record = await readBoundedJsonFile(path, MAX_RECORD_BYTES).catch(() => undefined);
  const { pid, started } = (record ?? {}) as Partial<ProcessSeen>;
  if (!Number.isSafeInteger(pid) || pid! <= 1 || typeof started !== "string") return undefined;
  return { pid: pid!, started };
}

/** Whether `seen` has exited: its pid is gone, a zombie, or now another process. */
async function gone(seen: ProcessSeen): Promise<boolean> {
  return (await processWithPid(seen.pid))?.started !== seen.started;
}

/** How often the processes {@link whenGone} waits for are looked at (all in one `ps`). */
const WATCH_MS = 1000;

/** The processes {@link whenGone} waits for, by pid, each with the waits on it. */
const watched = new Map<number, { seen: ProcessSeen; done: Set<(gone: boolean) => void> }>();
let watching = false;

/**
 * Resolves true once `seen` has exited, or false when `signal` aborts: how an agent learns that
 * a program it adopted, which is not its child, has ended. Every process waited for is looked at
 * by one `ps` a second, however many there are.
 */
export function whenGone(seen: ProcessSeen, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const entry = watched.get(seen.pid) ?? { seen, done: new Set() };
    const done = (gone: boolean) => {
      entry.done.delete(done);
      if (entry.done.size === 0) watched.delete(seen.pid);
      signal.removeEventListener("abort", onAbort);
      resolve(gone);
    };
    const onAbort = () => done(false);
    entry.done.add(done);
    watched.set(seen.pid, entry);
    signal.addEventListener("abort", onAbort, { once: true });
    if (!watching) void watch();
  });
}

async function watch(): Promise<void> {
  watching = true;
  try {
    while (watched.size > 0) {
      await sleep(WATCH_MS);
      // a failing ps says nothing about the processes: ask again at the next tick
      const alive = await ps([...watched.keys()]).catch(() => undefined);
      if (!alive) continue;
      const now = new Map(alive.map((p) => [p.pid, p.started]));
      for (const { seen, done } of [...watched.values()]) {
        if (now.get(seen.pid) !== seen.started) { for (const end of [...done]) end(true); }
      }
    }
  } finally {
    watching = false;
  }
}

/** When `seen` started, as an ISO time (`ps` gives local time to the second). */
export function startedAt(seen: ProcessSeen): string | undefined {
  const time = new Date(seen.started);
  return Number.isNaN(time.getTime()) ? undefined : time.toISOString();
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

/** How long a process SIGKILLed may take to be gone before it counts as stuck (every workload). */
export const KILL_WAIT_MS = 2000;

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
